package tables

import (
	"testing"

	"github.com/osquery/osquery-go/plugin/table"
)

// A row's rowid depends on its content and its rank among identical rows
// only: the same rows get the same rowids in every generate, whatever else
// it returns, and distinct rows get distinct rowids.
func TestRowIDsFollowContent(t *testing.T) {
	tbl := &Table{Name: "t", Columns: []table.ColumnDefinition{table.TextColumn("a"), table.TextColumn("b")}}
	a, b, ab := RowOf("x", "y"), RowOf("x", ""), RowOf("xy", "")
	ids := func(rows ...Row) []int64 {
		gen := NewRowIDs(tbl, len(rows))
		var out []int64
		for _, r := range rows {
			out = append(out, gen.Next(r))
		}
		return out
	}
	all := ids(a, b, ab, a, Row{})
	seen := map[int64]bool{}
	for _, id := range all {
		if seen[id] {
			t.Fatalf("rowids %v: two rows share one", all)
		}
		seen[id] = true
	}
	// Another branch of an OR, returning b and both copies of a.
	if got := ids(b, a, a); got[0] != all[1] || got[1] != all[0] || got[2] != all[3] {
		t.Errorf("rowids of b, a, a: %v; the first generate gave %v", got, all)
	}
}
