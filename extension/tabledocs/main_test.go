package main

import (
	"os"
	"strings"
	"testing"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// The README's table reference must be what `make docs` generates from the
// definitions.
func TestReadmeMatchesDefinitions(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := replaceSection(string(readme), reference(definitions()))
	if err != nil {
		t.Fatal(err)
	}
	if string(readme) != want {
		t.Error("README.md's table reference disagrees with the table definitions: run `make docs`")
	}
}

func TestEveryTableIsDocumented(t *testing.T) {
	for _, tbl := range definitions() {
		if strings.TrimSpace(tbl.Description) == "" {
			t.Errorf("table %s has no description", tbl.Name)
		}
		for _, c := range tbl.Columns {
			if strings.TrimSpace(c.Description) == "" {
				t.Errorf("column %s.%s has no description", tbl.Name, c.Name)
			}
		}
	}
}

func TestReference(t *testing.T) {
	got := reference([]*tables.Table{{
		Name:        "t",
		Description: "Rows\nof t.",
		Columns: []table.ColumnDefinition{
			table.BigIntColumn("a", table.IndexColumn(), table.ColumnDescription("A | B")),
			table.TextColumn("h", table.HiddenColumn(), table.IndexColumn(), table.ColumnDescription("hidden")),
			table.DoubleColumn("d", table.ColumnDescription("plain")),
		},
	}})
	want := intro + "\n### `t`\n\nRows of t.\n\n" +
		"| column | type | options | description |\n|---|---|---|---|\n" +
		"| `a` | BIGINT | index | A \\| B |\n" +
		"| `h` | TEXT | index, hidden | hidden |\n" +
		"| `d` | DOUBLE |  | plain |\n\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "# x\n" + beginMarker + "\nold\n" + endMarker + "\ntail\n"
	got, err := replaceSection(doc, "new\n")
	if err != nil || got != "# x\n"+beginMarker+"\nnew\n"+endMarker+"\ntail\n" {
		t.Errorf("got %q, %v", got, err)
	}
	for _, bad := range []string{"no markers", endMarker + beginMarker} {
		if _, err := replaceSection(bad, "x"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
