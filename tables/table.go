// Package tables defines every osquery table of fanotify.ext: one file per
// table with its columns and generate function over the /proc readers, plus
// the shared wrapper (runner.go) and the constraint helper (context.go).
package tables

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/osquery/osquery-go/plugin/table"
)

// Row is one result row: a value per column, in the order of the table's
// Columns. osquery passes every value as a string; an empty value is NULL
// in a numeric column. A generate may leave the columns its query does not
// read empty, or return zero Rows when it reads none (SELECT COUNT(*)): a
// zero Row is a nil pointer, so that the rows of 100,000 marks nobody reads
// take 800 KB rather than a slice of values each.
type Row struct{ values *rowValues }

// rowValues places a row in the block holding its values: its own values
// start at own[at].
type rowValues struct {
	block *rowBlock
	at    int
}

// rowBlock holds the values of rows alike: the first columns' values, which
// all of them share (a holder's, in the per-mark tables) and nobody
// modifies, then each row's own values in turn. Rows keep a value only for
// the columns their query reads (layout), so that a query reading one
// column of 100,000 marks does not hold 100,000 slices of every column.
type rowBlock struct {
	shared, own []string
	// layout places the own values; nil for a block of one row holding
	// its own values in column order (RowOf).
	layout *rowLayout
}

// rowLayout places the values a query reads among a row's own values.
type rowLayout struct {
	place []int // per column past the shared ones: its index among a row's own values, -1 when not read
	width int   // own values per row
}

// newRowLayout lays out rows whose own columns number cols, with values at
// used (positions counted past the shared columns, in increasing order).
func newRowLayout(cols int, used []int) *rowLayout {
	l := &rowLayout{place: make([]int, cols), width: len(used)}
	for i := range l.place {
		l.place[i] = -1
	}
	for k, i := range used {
		l.place[i] = k
	}
	return l
}

// appendRows appends n rows sharing shared, in one block allocated at once
// (in room, when given), and returns the rows and their own values in order
// (width per row) for the caller to fill.
func (l *rowLayout) appendRows(rows []Row, shared []string, n int, room *rowRoom) ([]Row, []string) {
	if room == nil {
		room = new(rowRoom)
	}
	b := &room.block
	*b = rowBlock{shared: shared, own: resized(b.own, n*l.width), layout: l}
	room.places = resized(room.places, n)
	for j := range room.places {
		room.places[j] = rowValues{b, j * l.width}
		rows = append(rows, Row{&room.places[j]})
	}
	return rows, b.own
}

// rowRoom holds a block of rows, which a stream builds each holder's rows
// in once the previous holder's are written: a 50,000-row reply through
// osqueryd's protocol then allocates the values of one holder's rows, not
// of every row.
type rowRoom struct {
	block  rowBlock
	places []rowValues
}

// resized is s with n zero elements, in s's array when it has room.
func resized[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// RowOf is the row of values, in column order.
func RowOf(values ...string) Row { return Row{&rowValues{block: &rowBlock{own: values}}} }

// Value is the row's value at column i; empty past its values, for the
// columns its query does not read and for every column of the zero Row.
func (r Row) Value(i int) string {
	v := r.values
	if v == nil {
		return ""
	}
	b := v.block
	if i < len(b.shared) {
		return b.shared[i]
	}
	i -= len(b.shared)
	if b.layout == nil {
		if i < len(b.own) {
			return b.own[i]
		}
		return ""
	}
	if i < len(b.layout.place) && b.layout.place[i] >= 0 {
		return b.own[v.at+b.layout.place[i]]
	}
	return ""
}

// Values names a row's values by column, for tables with few rows.
type Values map[string]string

// GenerateFunc produces the rows of one query. Constraints in q are hints:
// returning extra rows is correct (osqueryd and SQLite re-filter), returning
// fewer is a bug.
type GenerateFunc func(ctx context.Context, q QueryContext) ([]Row, error)

// Rows are the rows of one query, counted before they are built: osqueryd's
// protocol sends the count first, and a reply that encodes each row as All
// yields it never holds them all.
type Rows struct {
	Len int
	// All yields Len rows, each valid until the next is yielded: a stream
	// may build a holder's rows where the previous holder's were.
	All iter.Seq[Row]
}

// StreamFunc produces the rows of one query as Rows: what can fail (reading
// /proc) is done when it returns, and building the rows cannot fail.
type StreamFunc func(ctx context.Context, q QueryContext) (Rows, error)

// Table is one osquery table.
type Table struct {
	Name        string
	Description string
	Columns     []table.ColumnDefinition
	Generate    GenerateFunc
	// Stream, when set, is Generate's rows built as they are read; a table
	// whose results run to a hundred thousand rows has one.
	Stream StreamFunc

	indexOnce sync.Once
	index     map[string]int
}

// Index returns the position of the named column in a Row, -1 if the table
// has no such column.
func (t *Table) Index(name string) int {
	t.indexOnce.Do(func() {
		t.index = make(map[string]int, len(t.Columns))
		for i, c := range t.Columns {
			t.index[c.Name] = i
		}
	})
	if i, ok := t.index[name]; ok {
		return i
	}
	return -1
}

// Column returns the definition of the named column and whether it exists.
func (t *Table) Column(name string) (table.ColumnDefinition, bool) {
	if i := t.Index(name); i >= 0 {
		return t.Columns[i], true
	}
	return table.ColumnDefinition{}, false
}

// Row lays values out in column order. A name the table does not have is a
// bug in the table: it panics, which the runner reports as an error.
func (t *Table) Row(values Values) Row {
	row := make([]string, len(t.Columns))
	for name, v := range values {
		i := t.Index(name)
		if i < 0 {
			panic(fmt.Sprintf("%s has no column %q", t.Name, name))
		}
		row[i] = v
	}
	return RowOf(row...)
}

// column is a table column whose value is computed from the T a row
// describes.
type column[T any] struct {
	def   table.ColumnDefinition
	value func(T) string
}

func definitions[T any](cols []column[T]) []table.ColumnDefinition {
	defs := make([]table.ColumnDefinition, len(cols))
	for i, c := range cols {
		defs[i] = c.def
	}
	return defs
}

// rowsOf are the rows describing each of vs in a table whose columns are
// cols, with the columns at the positions used filled (see usedOf); zero
// Rows when the query reads none (COUNT(*)). The rows and their values are
// allocated once, not grown row by row: a namespace of 10,000 mounts spent
// more on copying its growing rows (and faulting in the pages of each
// copy) than on parsing its mount table.
func rowsOf[E any](cols []column[*E], used []int, vs []E) []Row {
	if len(used) == 0 {
		return make([]Row, len(vs))
	}
	rows, own := newRowLayout(len(cols), used).appendRows(make([]Row, 0, len(vs)), nil, len(vs), nil)
	fill(cols, used, own, vs)
	return rows
}

// streamChunk is how many rows streamOf builds at a time.
const streamChunk = 1024

// streamOf is rowsOf built as they are read, a chunk at a time in one
// room: a reply of 100,000 buffered events holds the values of one chunk,
// not of every row.
func streamOf[E any](cols []column[*E], used []int, vs []E) Rows {
	if len(used) == 0 {
		return Rows{len(vs), slices.Values(make([]Row, len(vs)))}
	}
	layout := newRowLayout(len(cols), used)
	return Rows{len(vs), func(yield func(Row) bool) {
		var room rowRoom
		var rows []Row
		for chunk := range slices.Chunk(vs, streamChunk) {
			var own []string
			rows, own = layout.appendRows(rows[:0], nil, len(chunk), &room)
			fill(cols, used, own, chunk)
			for _, r := range rows {
				if !yield(r) {
					return
				}
			}
		}
	}}
}

// fill writes the values at used of each of vs, in order, into own.
func fill[E any](cols []column[*E], used []int, own []string, vs []E) {
	for j := range vs {
		for k, i := range used {
			own[j*len(used)+k] = cols[i].value(&vs[j])
		}
	}
}

// namedRows makes t a table whose generate names its values: gen's rows
// are laid out in column order. For tables with few rows, where building a
// map per row costs nothing worth measuring.
func namedRows(t *Table, gen func(context.Context, QueryContext) ([]Values, error)) *Table {
	t.Generate = func(ctx context.Context, q QueryContext) ([]Row, error) {
		named, err := gen(ctx, q)
		if err != nil {
			return nil, err
		}
		rows := make([]Row, len(named))
		for i, v := range named {
			rows[i] = t.Row(v)
		}
		return rows, nil
	}
	return t
}

// Named returns rows with their values by column name, for the columns q
// reads: the form osquery's protocol carries.
func (t *Table) Named(rows iter.Seq[Row], q QueryContext) []map[string]string {
	used := t.Used(q)
	var named []map[string]string
	for row := range rows {
		m := make(map[string]string, len(used))
		for _, i := range used {
			m[t.Columns[i].Name] = row.Value(i)
		}
		named = append(named, m)
	}
	return named
}

// Used lists the positions of the columns q reads.
func (t *Table) Used(q QueryContext) []int { return usedOf(t.Columns, q) }

// usedOf lists the positions of the columns of defs that q reads.
func usedOf(defs []table.ColumnDefinition, q QueryContext) []int {
	var used []int
	for i, c := range defs {
		if q.Uses(c.Name) {
			used = append(used, i)
		}
	}
	return used
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
