package tables

import (
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseContextOsquerydShape(t *testing.T) {
	q, err := ParseContext(`{"constraints":[{"name":"pid","list":[{"op":2,"expr":"123"}],"affinity":"BIGINT"}],` +
		`"colsUsed":["pid"],"colsUsedBitset":1}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]Constraint{"pid": {{Op: OpEquals, Expr: "123"}}}
	if !reflect.DeepEqual(q.Constraints, want) {
		t.Errorf("constraints %v, want %v", q.Constraints, want)
	}
	if !q.Uses("pid") || q.Uses("path") {
		t.Errorf("Uses(pid)=%v Uses(path)=%v, want true false", q.Uses("pid"), q.Uses("path"))
	}
	if pids, ok := q.IntEquals("pid"); !ok || !reflect.DeepEqual(pids, []int64{123}) {
		t.Errorf("IntEquals(pid) = %v, %v; want [123], true", pids, ok)
	}
}

func TestParseContextShapes(t *testing.T) {
	cases := []struct {
		name, json string
		want       map[string][]Constraint
	}{
		{"op as string (old osquery)",
			`{"constraints":[{"name":"pid","list":[{"op":"2","expr":"123"}],"affinity":"BIGINT"}]}`,
			map[string][]Constraint{"pid": {{OpEquals, "123"}}}},
		{"empty list as string",
			`{"constraints":[{"name":"pid","list":"","affinity":"BIGINT"}],"colsUsed":["pid"]}`,
			map[string][]Constraint{"pid": nil}},
		{"null list",
			`{"constraints":[{"name":"pid","list":null}]}`,
			map[string][]Constraint{"pid": nil}},
		{"expr as number",
			`{"constraints":[{"name":"uid","list":[{"op":4,"expr":1000}]}]}`,
			map[string][]Constraint{"uid": {{OpGreater, "1000"}}}},
		{"several operators and columns",
			`{"constraints":[{"name":"pid","list":[{"op":32,"expr":"10"},{"op":16,"expr":"20"}],"affinity":"INTEGER"},` +
				`{"name":"path","list":[{"op":65,"expr":"/tmp/%"}],"affinity":"TEXT"}]}`,
			map[string][]Constraint{"pid": {{OpGreaterEq, "10"}, {OpLess, "20"}}, "path": {{OpLike, "/tmp/%"}}}},
		{"one column listed twice",
			`{"constraints":[{"name":"pid","list":[{"op":2,"expr":"1"}]},{"name":"pid","list":[{"op":2,"expr":"2"}]}]}`,
			map[string][]Constraint{"pid": {{OpEquals, "1"}, {OpEquals, "2"}}}},
		{"no constraints", `{"constraints":[]}`, map[string][]Constraint{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := ParseContext(c.json)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(q.Constraints, c.want) {
				t.Fatalf("constraints %#v, want %#v", q.Constraints, c.want)
			}
		})
	}
}

func TestParseContextColsUsed(t *testing.T) {
	cases := []struct {
		name, json  string
		pid, parent bool
	}{
		{"missing: every column used", `{"constraints":[]}`, true, true},
		{"null: every column used", `{"colsUsed":null}`, true, true},
		{"empty context: every column used", ``, true, true},
		{"listed", `{"colsUsed":["parent"],"colsUsedBitset":2}`, false, true},
		{"empty list: count(*) reads no column", `{"colsUsed":[]}`, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := ParseContext(c.json)
			if err != nil {
				t.Fatal(err)
			}
			if q.Uses("pid") != c.pid || q.Uses("parent") != c.parent {
				t.Fatalf("Uses(pid)=%v Uses(parent)=%v, want %v %v", q.Uses("pid"), q.Uses("parent"), c.pid, c.parent)
			}
		})
	}
}

func TestParseContextMalformed(t *testing.T) {
	for _, doc := range []string{
		`{`,
		`[]`,
		`{"constraints":{}}`,
		`{"constraints":[{"name":"pid","list":{}}]}`,
		`{"constraints":[{"name":"pid","list":"x"}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":"eq","expr":"1"}]}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":true,"expr":"1"}]}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":2.5,"expr":"1"}]}]}`,
		`{"constraints":[{"name":"pid","list":[{"expr":"1"}]}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":2,"expr":{}}]}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":2,"expr":[1]}]}]}`,
		`{"colsUsed":"pid"}`,
	} {
		if q, err := ParseContext(doc); err == nil {
			t.Errorf("%s parsed as %+v, want an error", doc, q)
		} else if !strings.HasPrefix(err.Error(), "context JSON") {
			t.Errorf("%s: error %q does not say it is about the context JSON", doc, err)
		}
	}
}

// ctx builds a context with the given constraints on column "c".
func ctx(cs ...Constraint) QueryContext {
	return NewQueryContext(map[string][]Constraint{"c": cs}, nil)
}

// osqueryd sends every column, with an empty list when unconstrained.
func TestConstrained(t *testing.T) {
	for contextJSON, want := range map[string]bool{
		``: false,
		`{"constraints":[{"name":"pid","list":[],"affinity":"BIGINT"},{"name":"path","list":"","affinity":"TEXT"}]}`:                       false,
		`{"constraints":[{"name":"pid","list":[],"affinity":"BIGINT"},{"name":"path","list":[{"op":65,"expr":"/a%"}],"affinity":"TEXT"}]}`: true,
	} {
		q, err := ParseContext(contextJSON)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Constrained(); got != want {
			t.Errorf("Constrained() of %s = %v, want %v", contextJSON, got, want)
		}
	}
}

func TestEquals(t *testing.T) {
	cases := []struct {
		name string
		q    QueryContext
		want []string
	}{
		{"equals", ctx(Constraint{OpEquals, "a"}), []string{"a"}},
		{"in", ctx(Constraint{OpIn, "a"}, Constraint{OpIn, "b"}), []string{"a", "b"}},
		{"empty string is a value", ctx(Constraint{OpEquals, ""}), []string{""}},
		{"other column", NewQueryContext(map[string][]Constraint{"d": {{OpEquals, "a"}}}, nil), nil},
		{"no constraints", ctx(), nil},
	}
	for _, op := range []Operator{OpUnique, OpGreater, OpLessEq, OpLess, OpGreaterEq, OpMatch, OpLike, OpGlob,
		OpRegexp, OpNotEquals, OpIsNot, OpIsNotNull, OpIsNull, OpIs, 73, 150} {
		cases = append(cases, struct {
			name string
			q    QueryContext
			want []string
		}{"ignores op " + strconv.Itoa(int(op)), ctx(Constraint{op, "a"}), nil})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := c.q.Equals("c")
			if !reflect.DeepEqual(got, c.want) || ok != (c.want != nil) {
				t.Fatalf("Equals = %q, %v; want %q, %v", got, ok, c.want, c.want != nil)
			}
		})
	}
}

func TestIntEquals(t *testing.T) {
	cases := []struct {
		name string
		q    QueryContext
		want []int64 // nil: no narrowing
	}{
		{"one", ctx(Constraint{OpEquals, "123"}), []int64{123}},
		{"in list", ctx(Constraint{OpIn, "1"}, Constraint{OpIn, "-2"}), []int64{1, -2}},
		{"numeric text as SQLite converts it", ctx(Constraint{OpEquals, "+007"}), []int64{7}},
		{"int64 extremes", ctx(Constraint{OpEquals, "-9223372036854775808"}, Constraint{OpEquals, "9223372036854775807"}),
			[]int64{math.MinInt64, math.MaxInt64}},
		{"not a number", ctx(Constraint{OpEquals, "abc"}), nil},
		{"one bad value spoils the set", ctx(Constraint{OpIn, "1"}, Constraint{OpIn, "abc"}), nil},
		{"real", ctx(Constraint{OpEquals, "1.0"}), nil},
		{"beyond int64", ctx(Constraint{OpEquals, "9223372036854775808"}), nil},
		{"padded", ctx(Constraint{OpEquals, " 5"}), nil},
		{"empty", ctx(Constraint{OpEquals, ""}), nil},
		{"IS is not narrowed", ctx(Constraint{OpIs, "5"}), nil},
		{"not equal", ctx(Constraint{OpNotEquals, "5"}), nil},
		{"no constraints", ctx(), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := c.q.IntEquals("c")
			if !reflect.DeepEqual(got, c.want) || ok != (c.want != nil) {
				t.Fatalf("IntEquals = %v, %v; want %v, %v", got, ok, c.want, c.want != nil)
			}
		})
	}
}

func TestIntRange(t *testing.T) {
	const lo, hi = math.MinInt64, math.MaxInt64
	all := Range{lo, hi}
	cases := []struct {
		name string
		q    QueryContext
		want Range
	}{
		{"none", ctx(), all},
		{"=", ctx(Constraint{OpEquals, "5"}), Range{5, 5}},
		{">", ctx(Constraint{OpGreater, "5"}), Range{6, hi}},
		{">=", ctx(Constraint{OpGreaterEq, "5"}), Range{5, hi}},
		{"<", ctx(Constraint{OpLess, "5"}), Range{lo, 4}},
		{"<=", ctx(Constraint{OpLessEq, "5"}), Range{lo, 5}},
		{"between", ctx(Constraint{OpGreater, "-3"}, Constraint{OpLessEq, "10"}), Range{-2, 10}},
		{"contradiction is empty", ctx(Constraint{OpEquals, "5"}, Constraint{OpEquals, "6"}), Range{6, 5}},
		{"> max int64 does not wrap", ctx(Constraint{OpGreater, "9223372036854775807"}), Range{hi, hi}},
		{"< min int64 does not wrap", ctx(Constraint{OpLess, "-9223372036854775808"}), Range{lo, lo}},
		{"integers beyond 2^53 stay exact", ctx(Constraint{OpGreaterEq, "9007199254740995"}), Range{9007199254740995, hi}},
		{"= beyond 2^53", ctx(Constraint{OpEquals, "9007199254740993"}), Range{9007199254740993, 9007199254740993}},
		{"SQLite numeric text", ctx(Constraint{OpGreater, "+010"}), Range{11, hi}},

		// Reals: strict comparisons count as inclusive (see
		// TestIntRangeSurvivesRealRendering).
		{"> real", ctx(Constraint{OpGreater, "2.5"}), Range{3, hi}},
		{">= real", ctx(Constraint{OpGreaterEq, "2.7"}), Range{3, hi}},
		{"< real", ctx(Constraint{OpLess, "2.5"}), Range{lo, 2}},
		{"<= real", ctx(Constraint{OpLessEq, "2.2"}), Range{lo, 2}},
		{"> integral real", ctx(Constraint{OpGreater, "2.0"}), Range{2, hi}},
		{"< integral real", ctx(Constraint{OpLess, "2.0"}), Range{lo, 2}},
		{"= fraction matches no integer", ctx(Constraint{OpEquals, "2.5"}), Range{3, 2}},
		{"= integral real", ctx(Constraint{OpEquals, "3.0"}), Range{3, 3}},
		{"negative reals", ctx(Constraint{OpGreater, "-2.5"}, Constraint{OpLess, "-1.2"}), Range{-2, -2}},
		{"exponent", ctx(Constraint{OpLessEq, "1e3"}), Range{lo, 1000}},
		{"just under 1e15", ctx(Constraint{OpGreaterEq, "999999999999999.0"}), Range{999999999999999, hi}},

		// Too large to narrow safely, or not a number to SQLite: text sorts
		// above every number, so `c <= 'NaN'` holds for every row.
		{"1e30", ctx(Constraint{OpLessEq, "1e30"}, Constraint{OpGreater, "1e30"}), all},
		{"-1e30", ctx(Constraint{OpGreaterEq, "-1e30"}, Constraint{OpLess, "-1e30"}, Constraint{OpEquals, "-1.0e+30"}), all},
		{"1e15", ctx(Constraint{OpEquals, "1e+15"}), all},
		{"beyond int64", ctx(Constraint{OpLess, "99999999999999999999"}), all},
		{"overflowing real", ctx(Constraint{OpLess, "1e400"}), all},
		{"NaN", ctx(Constraint{OpLessEq, "NaN"}, Constraint{OpGreater, "NaN"}), all},
		{"Inf", ctx(Constraint{OpLessEq, "-Inf"}, Constraint{OpGreaterEq, "+Infinity"}, Constraint{OpLess, "-inf"}), all},
		{"hex float", ctx(Constraint{OpLess, "0x1p4"}), all},
		{"underscores", ctx(Constraint{OpLess, "1_000"}), all},
		{"padded", ctx(Constraint{OpLess, " 5"}), all},
		{"text", ctx(Constraint{OpEquals, "abc"}, Constraint{OpLess, "abc"}), all},
		{"empty", ctx(Constraint{OpLess, ""}), all},
		{"sign only", ctx(Constraint{OpLess, "-"}, Constraint{OpLess, "e"}), all},
	}
	for _, op := range []Operator{OpUnique, OpIn, OpMatch, OpLike, OpGlob, OpRegexp, OpNotEquals, OpIsNot,
		OpIsNotNull, OpIsNull, OpIs, 73, 74, 150} {
		cases = append(cases, struct {
			name string
			q    QueryContext
			want Range
		}{"ignores op " + strconv.Itoa(int(op)), ctx(Constraint{op, "5"}), all})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.q.IntRange("c"); got != c.want {
				t.Fatalf("IntRange = %+v, want %+v", got, c.want)
			}
			checkIntRangeSound(t, c.q, "c")
		})
	}
}

// Older SQLite renders a real operand as "%!.15g": the range must still hold
// every integer that the real itself admits.
func TestIntRangeSurvivesRealRendering(t *testing.T) {
	for _, f := range []float64{12345678901234.96, 12345678901234.04, -12345678901234.96, 999999999999999.4,
		123456789012345.5, 0.1, -0.5, 99999999999999.95} {
		text := strconv.FormatFloat(f, 'g', 15, 64)
		if !strings.ContainsAny(text, ".e") {
			text += ".0" // the '!' flag keeps a real looking like one
		}
		for _, op := range []Operator{OpEquals, OpGreater, OpGreaterEq, OpLess, OpLessEq} {
			r := ctx(Constraint{op, text}).IntRange("c")
			for x := int64(math.Floor(f)) - 2; x <= int64(math.Ceil(f))+2; x++ {
				if satisfied, _ := compare(x, op, strconv.FormatFloat(f, 'g', -1, 64)); satisfied && !r.Contains(x) {
					t.Errorf("real %v rendered %q: op %d admits %d, IntRange %+v drops it", f, text, op, x, r)
				}
			}
		}
	}
}

// compare evaluates `x op expr` for an integer column the way SQLite does,
// exactly. known is false for operators and operands it cannot judge.
func compare(x int64, op Operator, expr string) (satisfied, known bool) {
	var cmp int
	if v, err := strconv.ParseInt(expr, 10, 64); err == nil {
		cmp = big.NewInt(x).Cmp(big.NewInt(v))
	} else if f, ok := parseReal(expr); ok && !math.IsInf(f, 0) {
		cmp = new(big.Float).SetInt64(x).Cmp(big.NewFloat(f))
	} else {
		return false, false
	}
	switch op {
	case OpEquals:
		return cmp == 0, true
	case OpGreater:
		return cmp > 0, true
	case OpGreaterEq:
		return cmp >= 0, true
	case OpLess:
		return cmp < 0, true
	case OpLessEq:
		return cmp <= 0, true
	}
	return false, false
}

// candidates are the integers where the constraints on col change truth.
func candidates(q QueryContext, col string) []int64 {
	xs := []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, math.MaxInt64 - 1, math.MaxInt64}
	for _, c := range q.Constraints[col] {
		if v, err := strconv.ParseInt(c.Expr, 10, 64); err == nil {
			xs = append(xs, v, max(v, math.MinInt64+1)-1, min(v, math.MaxInt64-1)+1)
		} else if f, ok := parseReal(c.Expr); ok && math.Abs(f) < 1e18 {
			for d := int64(-2); d <= 2; d++ {
				xs = append(xs, int64(math.Floor(f))+d)
			}
		}
	}
	return xs
}

// checkIntRangeSound fails when IntRange or IntEquals leaves out an integer
// that satisfies every constraint on col: osqueryd would then lose rows.
// Constraints it cannot judge count as satisfied; IN lists, whose values
// only together bound the column, exempt IntEquals from the check.
func checkIntRangeSound(t *testing.T, q QueryContext, col string) {
	t.Helper()
	r := q.IntRange(col)
	vals, narrowed := q.IntEquals(col)
	if slices.ContainsFunc(q.Constraints[col], func(c Constraint) bool { return c.Op == OpIn }) {
		narrowed = false
	}
	for _, x := range candidates(q, col) {
		admitted := true
		for _, c := range q.Constraints[col] {
			if ok, known := compare(x, c.Op, c.Expr); known && !ok {
				admitted = false
			}
		}
		if !admitted {
			continue
		}
		if !r.Contains(x) {
			t.Fatalf("constraints %v admit %d, IntRange %+v drops it", q.Constraints[col], x, r)
		}
		if narrowed && !slices.Contains(vals, x) {
			t.Fatalf("constraints %v admit %d, IntEquals %v drops it", q.Constraints[col], x, vals)
		}
	}
}

func TestMatchesText(t *testing.T) {
	vals := []string{"max_user_marks", "12:3  "}
	for v, want := range map[string]bool{
		"max_user_marks": true, "MAX_User_Marks": true, "max_user_marks  ": true, "12:3": true,
		"max_user_mark": false, " max_user_marks": false, "12:34": false, "": false,
	} {
		if got := MatchesText(vals, v); got != want {
			t.Errorf("MatchesText(%q, %q) = %v, want %v", vals, v, got, want)
		}
	}
}
