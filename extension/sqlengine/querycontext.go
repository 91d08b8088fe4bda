package sqlengine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"modernc.org/sqlite/vtab"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// SQLite's LIMIT and OFFSET constraint codes (SQLite ≥ 3.38 offers them to
// virtual tables; osqueryd forwards them like any other operator).
const (
	opLimit    tables.Operator = 73
	opOffset   tables.Operator = 74
	opFunction tables.Operator = 150
)

// sqliteOps maps modernc's operator enum back to SQLite's codes, which is
// what osqueryd puts in the context. modernc reports anything else as
// OpUnknown, which cannot be forwarded.
var sqliteOps = map[vtab.ConstraintOp]tables.Operator{
	vtab.OpEQ:        tables.OpEquals,
	vtab.OpGT:        tables.OpGreater,
	vtab.OpLE:        tables.OpLessEq,
	vtab.OpLT:        tables.OpLess,
	vtab.OpGE:        tables.OpGreaterEq,
	vtab.OpMATCH:     tables.OpMatch,
	vtab.OpLIKE:      tables.OpLike,
	vtab.OpGLOB:      tables.OpGlob,
	vtab.OpREGEXP:    tables.OpRegexp,
	vtab.OpNE:        tables.OpNotEquals,
	vtab.OpISNOT:     tables.OpIsNot,
	vtab.OpISNOTNULL: tables.OpIsNotNull,
	vtab.OpISNULL:    tables.OpIsNull,
	vtab.OpIS:        tables.OpIs,
	vtab.OpLIMIT:     opLimit,
	vtab.OpOFFSET:    opOffset,
	vtab.OpFUNCTION:  opFunction,
}

// term is one constraint the table receives: SQLite passes its right-hand
// side to Filter at the term's position.
type term struct {
	column int
	op     tables.Operator
}

// plan is what BestIndex decided for one scan. It travels to Filter in
// idxStr, so a table instance keeps no per-plan state.
type plan struct {
	colUsed uint64
	terms   []term
}

// encode renders the plan as "colUsed;column:op,column:op".
func (p plan) encode() string {
	parts := make([]string, len(p.terms))
	for i, t := range p.terms {
		parts[i] = fmt.Sprintf("%d:%d", t.column, t.op)
	}
	return strconv.FormatUint(p.colUsed, 10) + ";" + strings.Join(parts, ",")
}

func decodePlan(s string) (plan, error) {
	used, list, ok := strings.Cut(s, ";")
	if !ok {
		return plan{}, fmt.Errorf("malformed index plan %q", s)
	}
	var p plan
	var err error
	if p.colUsed, err = strconv.ParseUint(used, 10, 64); err != nil {
		return plan{}, fmt.Errorf("malformed index plan %q", s)
	}
	if list == "" {
		return p, nil
	}
	for _, item := range strings.Split(list, ",") {
		var t term
		if _, err := fmt.Sscanf(item, "%d:%d", &t.column, &t.op); err != nil {
			return plan{}, fmt.Errorf("malformed index plan %q", s)
		}
		p.terms = append(p.terms, t)
	}
	return p, nil
}

type exprJSON struct {
	Op   tables.Operator `json:"op"`
	Expr string          `json:"expr"`
}

type constraintListJSON struct {
	Name     string     `json:"name"`
	List     []exprJSON `json:"list"`
	Affinity string     `json:"affinity"`
}

type contextJSON struct {
	Constraints    []constraintListJSON `json:"constraints"`
	ColsUsed       []string             `json:"colsUsed"`
	ColsUsedBitset uint64               `json:"colsUsedBitset"`
}

// buildContext renders the context JSON osqueryd sends with a generate
// (xFilter plus TablePlugin::setRequestFromContext): one entry per column,
// sorted by name, with the type as affinity and the pushed constraints whose
// value is neither NULL nor empty; then the used columns and SQLite's colUsed
// mask. vals are Filter's arguments, in the order of p.terms.
func buildContext(t *tables.Table, p plan, vals []vtab.Value) (string, error) {
	lists := make(map[string][]exprJSON, len(t.Columns))
	for i, v := range vals {
		if i >= len(p.terms) {
			return "", fmt.Errorf("%s: %d constraint values for %d constraints", t.Name, len(vals), len(p.terms))
		}
		expr, ok := sqliteText(v)
		// osqueryd reads the value as a C string: it ends at the first NUL,
		// and NULL or empty values are skipped.
		expr, _, _ = strings.Cut(expr, "\x00")
		if !ok || expr == "" {
			continue
		}
		name := t.Columns[p.terms[i].column].Name
		lists[name] = append(lists[name], exprJSON{Op: p.terms[i].op, Expr: expr})
	}

	ctx := contextJSON{
		Constraints:    make([]constraintListJSON, 0, len(t.Columns)),
		ColsUsed:       usedColumns(t, p.colUsed),
		ColsUsedBitset: p.colUsed,
	}
	for _, c := range t.Columns {
		list := lists[c.Name]
		if list == nil {
			list = []exprJSON{}
		}
		ctx.Constraints = append(ctx.Constraints, constraintListJSON{Name: c.Name, List: list, Affinity: string(c.Type)})
	}
	sort.Slice(ctx.Constraints, func(i, j int) bool { return ctx.Constraints[i].Name < ctx.Constraints[j].Name })

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ctx); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// usedColumns names the columns set in SQLite's colUsed mask. Bit 63 stands
// for every column from the 64th on.
func usedColumns(t *tables.Table, colUsed uint64) []string {
	used := []string{}
	for i, c := range t.Columns {
		if colUsed&(1<<min(i, 63)) != 0 {
			used = append(used, c.Name)
		}
	}
	return used
}
