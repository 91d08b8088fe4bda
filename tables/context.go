package tables

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Operator is SQLite's index-constraint code as osqueryd forwards it.
type Operator int

// The operators osqueryd sends. Codes 68-72 are SQLite's; 1 (UNIQUE) and 3
// (IN) are osquery's own.
const (
	OpUnique    Operator = 1
	OpEquals    Operator = 2
	OpIn        Operator = 3
	OpGreater   Operator = 4
	OpLessEq    Operator = 8
	OpLess      Operator = 16
	OpGreaterEq Operator = 32
	OpMatch     Operator = 64
	OpLike      Operator = 65
	OpGlob      Operator = 66
	OpRegexp    Operator = 67
	OpNotEquals Operator = 68
	OpIsNot     Operator = 69
	OpIsNotNull Operator = 70
	OpIsNull    Operator = 71
	OpIs        Operator = 72
)

// Constraint is one `column OP expr` term of the query.
type Constraint struct {
	Op   Operator
	Expr string
}

// QueryContext is the deserialized context osqueryd sends with a generate.
type QueryContext struct {
	// Constraints maps a column name to its constraints.
	Constraints map[string][]Constraint
	// colsUsed holds the columns the query reads; nil means all of them.
	colsUsed map[string]bool
}

// NewQueryContext builds a context; cols nil means every column is used.
func NewQueryContext(constraints map[string][]Constraint, cols []string) QueryContext {
	q := QueryContext{Constraints: constraints}
	if cols != nil {
		q.colsUsed = make(map[string]bool, len(cols))
		for _, c := range cols {
			q.colsUsed[c] = true
		}
	}
	return q
}

type contextJSON struct {
	Constraints []struct {
		Name     string          `json:"name"`
		Affinity string          `json:"affinity"`
		List     json.RawMessage `json:"list"`
	} `json:"constraints"`
	ColsUsed []string `json:"colsUsed"`
}

type constraintJSON struct {
	Op   json.RawMessage `json:"op"`
	Expr json.RawMessage `json:"expr"`
}

// ParseContext decodes osqueryd's context JSON. The op may be a number or a
// string (old osquery) and an empty list arrives as "".
func ParseContext(data string) (QueryContext, error) {
	if data == "" {
		return NewQueryContext(nil, nil), nil
	}
	var raw contextJSON
	if err := json.Unmarshal([]byte(data), &raw); err != nil {
		return QueryContext{}, fmt.Errorf("context JSON: %w", err)
	}
	constraints := make(map[string][]Constraint, len(raw.Constraints))
	for _, c := range raw.Constraints {
		list, err := parseConstraintList(c.List)
		if err != nil {
			return QueryContext{}, fmt.Errorf("context JSON: column %q: %w", c.Name, err)
		}
		constraints[c.Name] = append(constraints[c.Name], list...)
	}
	return NewQueryContext(constraints, raw.ColsUsed), nil
}

func parseConstraintList(data json.RawMessage) ([]Constraint, error) {
	if len(data) == 0 || string(data) == "null" || string(data) == `""` {
		return nil, nil
	}
	var items []constraintJSON
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, fmt.Errorf("constraint list: %w", err)
	}
	out := make([]Constraint, 0, len(items))
	for _, it := range items {
		op, err := jsonScalar(it.Op)
		if err != nil {
			return nil, fmt.Errorf("op: %w", err)
		}
		code, err := strconv.Atoi(op)
		if err != nil {
			return nil, fmt.Errorf("op %q is not a number", op)
		}
		expr, err := jsonScalar(it.Expr)
		if err != nil {
			return nil, fmt.Errorf("expr: %w", err)
		}
		out = append(out, Constraint{Op: Operator(code), Expr: expr})
	}
	return out, nil
}

// jsonScalar returns a JSON string's contents or a number's text.
func jsonScalar(data json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(data, &s) == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(data, &n); err != nil {
		return "", fmt.Errorf("want a string or number, got %s", data)
	}
	return n.String(), nil
}

// Uses reports whether the query reads column col. Without colsUsed in the
// context every column counts as used.
func (q QueryContext) Uses(col string) bool {
	return q.colsUsed == nil || q.colsUsed[col]
}

// Constrained reports whether osqueryd sent any constraint: it sends every
// column, most with an empty list.
func (q QueryContext) Constrained() bool {
	for _, cs := range q.Constraints {
		if len(cs) > 0 {
			return true
		}
	}
	return false
}

// Equals returns the values col must equal (=, IN), and false when the query
// does not restrict col to a finite set. The values are compared as text, so
// numeric columns use IntEquals. IS is left out: a NULL operand would match
// rows that no value names.
func (q QueryContext) Equals(col string) ([]string, bool) {
	var vals []string
	for _, c := range q.Constraints[col] {
		switch c.Op {
		case OpEquals, OpIn:
			vals = append(vals, c.Expr)
		}
	}
	return vals, len(vals) > 0
}

// MatchesText reports whether v equals one of vals (from Equals) under
// any of SQLite's built-in collations: BINARY, NOCASE (case folded) or
// RTRIM (trailing spaces ignored). A constraint arrives without its
// collation, osqueryd's as the embedded engine's, so a table narrowing on
// text keeps every row SQLite may keep, and SQLite drops the others.
func MatchesText(vals []string, v string) bool {
	v = strings.TrimRight(v, " ")
	return slices.ContainsFunc(vals, func(w string) bool { return strings.EqualFold(strings.TrimRight(w, " "), v) })
}

// IntEquals is Equals for an integer column. A value that is not an integer
// (`pid = 'abc'`, `pid = 1.0`) disables narrowing rather than failing the query.
func (q QueryContext) IntEquals(col string) ([]int64, bool) {
	strs, ok := q.Equals(col)
	if !ok {
		return nil, false
	}
	vals := make([]int64, 0, len(strs))
	for _, s := range strs {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, false
		}
		vals = append(vals, v)
	}
	return vals, true
}

// Range is an inclusive integer interval.
type Range struct{ Min, Max int64 }

// Contains reports whether v lies in r.
func (r Range) Contains(v int64) bool { return v >= r.Min && v <= r.Max }

var allIntegers = Range{Min: math.MinInt64, Max: math.MaxInt64}

// IntRange returns an interval holding every integer that the comparisons on
// col allow. It may be wider than the query's, never narrower. Operands that
// SQLite would not compare as numbers narrow nothing.
func (q QueryContext) IntRange(col string) Range {
	r := allIntegers
	for _, c := range q.Constraints[col] {
		b := allIntegers
		if v, err := strconv.ParseInt(c.Expr, 10, 64); err == nil {
			b = intBound(c.Op, v)
		} else if f, ok := parseReal(c.Expr); ok {
			b = realBound(c.Op, f)
		}
		r.Min, r.Max = max(r.Min, b.Min), min(r.Max, b.Max)
	}
	return r
}

// intBound is exact, as SQLite compares integers exactly. Strict bounds at
// the ends of int64 saturate rather than wrap.
func intBound(op Operator, v int64) Range {
	switch op {
	case OpEquals:
		return Range{v, v}
	case OpGreater:
		if v < math.MaxInt64 {
			v++
		}
		return Range{v, math.MaxInt64}
	case OpGreaterEq:
		return Range{v, math.MaxInt64}
	case OpLess:
		if v > math.MinInt64 {
			v--
		}
		return Range{math.MinInt64, v}
	case OpLessEq:
		return Range{math.MinInt64, v}
	}
	return allIntegers
}

// realBound treats strict comparisons as inclusive: older SQLite renders a
// real with 15 significant digits, which below 1e15 may round it onto an
// integer but never past one. Larger reals narrow nothing.
func realBound(op Operator, f float64) Range {
	if math.Abs(f) >= 1e15 {
		return allIntegers
	}
	lo, hi := int64(math.Ceil(f)), int64(math.Floor(f))
	switch op {
	case OpEquals:
		return Range{lo, hi}
	case OpGreater, OpGreaterEq:
		return Range{lo, math.MaxInt64}
	case OpLess, OpLessEq:
		return Range{math.MinInt64, hi}
	}
	return allIntegers
}

// parseReal accepts only SQLite's decimal syntax: Go's ParseFloat also takes
// "Inf", "NaN", hex and underscores, which SQLite keeps as text, and text
// sorts above every number.
func parseReal(s string) (float64, bool) {
	if strings.Trim(s, "0123456789.eE+-") != "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}
