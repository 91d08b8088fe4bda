package sqlengine

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/osquery/osquery-go/plugin/table"
	"modernc.org/sqlite/vtab"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// FuzzContextRoundTrip checks that the context JSON the engine writes for a
// generate is read back by tables.ParseContext with the same operators and
// values, as osqueryd's would be: values end at a NUL, empty ones are left
// out, and the used columns survive.
func FuzzContextRoundTrip(f *testing.F) {
	f.Add(2, "42", "x", int64(7), uint64(3))
	f.Add(65, "ba%", "", int64(-1), uint64(1))
	f.Add(68, "a\"b\\c\n", "\x00", int64(0), uint64(0))
	f.Add(150, "<script>&", "é", int64(1<<62), ^uint64(0))
	f.Fuzz(func(t *testing.T, op int, text, other string, number int64, colUsed uint64) {
		// encoding/json writes invalid UTF-8 as U+FFFD; table values are
		// always valid UTF-8 (DisplayPath), so such operands narrow nothing
		// that a table could show.
		if !utf8.ValidString(text) || !utf8.ValidString(other) {
			t.Skip()
		}
		tbl := &tables.Table{Name: "t", Columns: []table.ColumnDefinition{
			table.TextColumn("a"), table.BigIntColumn("b"), table.TextColumn("c"),
		}}
		p := plan{colUsed: colUsed, terms: []term{{0, tables.Operator(op)}, {1, tables.OpEquals}, {2, tables.OpLike}, {0, tables.OpEquals}}}
		vals := []vtab.Value{text, number, other, nil}
		data, err := buildContext(tbl, p, vals)
		if err != nil {
			t.Fatal(err)
		}
		q, err := tables.ParseContext(data)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		want := map[string][]tables.Constraint{}
		for i, v := range []string{text, "", other} {
			if i == 1 {
				continue
			}
			if v, _, _ = strings.Cut(v, "\x00"); v != "" {
				want[tbl.Columns[p.terms[i].column].Name] = []tables.Constraint{{Op: p.terms[i].op, Expr: v}}
			}
		}
		want["b"] = []tables.Constraint{{Op: tables.OpEquals, Expr: formatInt(number)}}
		for _, col := range []string{"a", "b", "c"} {
			if got := q.Constraints[col]; !equalConstraints(got, want[col]) {
				t.Errorf("%s: column %s: %v, want %v", data, col, got, want[col])
			}
			if used := colUsed&(1<<colIndex(col)) != 0; q.Uses(col) != used {
				t.Errorf("%s: Uses(%s) = %v, colUsed %#x", data, col, q.Uses(col), colUsed)
			}
		}
	})
}

func colIndex(col string) int { return int(col[0] - 'a') }

func formatInt(v int64) string {
	s, _ := sqliteText(v)
	return s
}

func equalConstraints(a, b []tables.Constraint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
