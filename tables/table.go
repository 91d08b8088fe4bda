// Package tables defines every osquery table of fanotify.ext: one file per
// table with its columns and generate function over the /proc readers, plus
// the shared wrapper (runner.go) and the constraint helper (context.go).
package tables

import (
	"context"

	"github.com/osquery/osquery-go/plugin/table"
)

// Row is one result row: osquery passes every value as a string.
type Row = map[string]string

// GenerateFunc produces the rows of one query. Constraints in q are hints:
// returning extra rows is correct (osqueryd and SQLite re-filter), returning
// fewer is a bug.
type GenerateFunc func(ctx context.Context, q QueryContext) ([]Row, error)

// Table is one osquery table.
type Table struct {
	Name        string
	Description string
	Columns     []table.ColumnDefinition
	Generate    GenerateFunc
}

// Column returns the definition of the named column and whether it exists.
func (t *Table) Column(name string) (table.ColumnDefinition, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return table.ColumnDefinition{}, false
}

// Column constructors shared by the table files. Natural keys are INDEX so
// that osqueryd pushes their constraints; helper columns are HIDDEN|INDEX,
// since osqueryd pushes nothing on a HIDDEN-only column.
func text(name, desc string, opts ...table.ColumnOpt) table.ColumnDefinition {
	return table.TextColumn(name, append(opts, table.ColumnDescription(desc))...)
}

func integer(name, desc string, opts ...table.ColumnOpt) table.ColumnDefinition {
	return table.IntegerColumn(name, append(opts, table.ColumnDescription(desc))...)
}

func bigint(name, desc string, opts ...table.ColumnOpt) table.ColumnDefinition {
	return table.BigIntColumn(name, append(opts, table.ColumnDescription(desc))...)
}

func double(name, desc string, opts ...table.ColumnOpt) table.ColumnDefinition {
	return table.DoubleColumn(name, append(opts, table.ColumnDescription(desc))...)
}

var (
	index  = table.IndexColumn()
	hidden = table.HiddenColumn()
)
