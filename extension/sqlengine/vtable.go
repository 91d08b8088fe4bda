package sqlengine

import (
	"context"
	"fmt"

	"github.com/osquery/osquery-go/plugin/table"
	"modernc.org/sqlite/vtab"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// maxIndexCost is osqueryd's cost for a scan it cannot narrow.
const maxIndexCost = 1000000

// module creates the virtual table of one extension table on a connection.
type module struct {
	engine *Engine
	table  *tables.Table
}

// Create declares the table's schema. The one module argument is the id
// under which Query registered its context.
func (m *module) Create(ctx vtab.Context, args []string) (vtab.Table, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("%s: want one module argument (query id), got %v", m.table.Name, args[3:])
	}
	queryCtx, ok := m.engine.queries.Load(args[3])
	if !ok {
		return nil, fmt.Errorf("%s: no query %s", m.table.Name, args[3])
	}
	if err := ctx.Declare(declaration(m.table)); err != nil {
		return nil, fmt.Errorf("%s: %w", m.table.Name, err)
	}
	return &vtable{engine: m.engine, table: m.table, ctx: queryCtx.(context.Context)}, nil
}

// Connect is Create: the tables live in the temp schema of one connection.
func (m *module) Connect(ctx vtab.Context, args []string) (vtab.Table, error) {
	return m.Create(ctx, args)
}

// vtable is one extension table attached to one connection.
type vtable struct {
	engine *Engine
	table  *tables.Table
	ctx    context.Context
}

// BestIndex follows osqueryd's xBestIndex: every usable constraint on an
// INDEX, ADDITIONAL or REQUIRED column is passed to the table, except range
// comparisons on TEXT columns; omit stays false, so SQLite re-applies every
// filter to the rows a generate returns.
func (t *vtable) BestIndex(info *vtab.IndexInfo) error {
	p := plan{colUsed: info.ColUsed}
	cost := float64(maxIndexCost)
	requiredConstraint := false
	for i, c := range info.Constraints {
		op, known := sqliteOps[c.Op]
		if !c.Usable || !known || c.Column < 0 || c.Column >= len(t.table.Columns) {
			continue
		}
		col := t.table.Columns[c.Column]
		if col.Type == table.ColumnTypeText && isRange(op) {
			cost += 10
			continue
		}
		opts := effectiveOptions(col)
		switch {
		case opts&optRequired != 0:
			requiredConstraint = true
			cost = 1
		case opts&(optIndex|optAdditional) != 0:
			cost = 1
		default:
			continue // SQLite filters it
		}
		info.Constraints[i].ArgIndex = len(p.terms)
		p.terms = append(p.terms, term{column: c.Column, op: op})
	}
	if t.usesRequiredColumn(p.colUsed) && !requiredConstraint {
		cost = maxIndexCost
	}
	info.IdxStr = p.encode()
	info.EstimatedCost = cost
	return nil
}

func isRange(op tables.Operator) bool {
	switch op {
	case tables.OpGreater, tables.OpGreaterEq, tables.OpLess, tables.OpLessEq:
		return true
	}
	return false
}

func (t *vtable) usesRequiredColumn(colUsed uint64) bool {
	for i, c := range t.table.Columns {
		if colUsed&(1<<min(i, 63)) != 0 && effectiveOptions(c)&optRequired != 0 {
			return true
		}
	}
	return false
}

// requiredSatisfied reports whether a table with REQUIRED columns got a
// constraint on one of them; osqueryd refuses the scan otherwise.
func (t *vtable) requiredSatisfied(p plan) bool {
	required := false
	for _, c := range t.table.Columns {
		required = required || effectiveOptions(c)&optRequired != 0
	}
	for _, tm := range p.terms {
		if effectiveOptions(t.table.Columns[tm.column])&optRequired != 0 {
			return true
		}
	}
	return !required
}

func (t *vtable) Open() (vtab.Cursor, error) { return &cursor{table: t}, nil }
func (t *vtable) Disconnect() error          { return nil }
func (t *vtable) Destroy() error             { return nil }

// cursor walks the rows of one generate.
type cursor struct {
	table  *vtable
	rows   []tables.Row
	rowids []int64
	pos    int
}

// Filter runs one generate, as osqueryd's xFilter does: it builds the context
// JSON, then goes through the same parser and runner as osquery mode.
func (c *cursor) Filter(_ int, idxStr string, vals []vtab.Value) error {
	t := c.table
	c.rows, c.rowids, c.pos = nil, nil, 0
	p, err := decodePlan(idxStr)
	if err != nil {
		return err
	}
	if !t.requiredSatisfied(p) {
		return fmt.Errorf("table %s was queried without a required column in the WHERE clause", t.table.Name)
	}
	contextJSON, err := buildContext(t.table, p, vals)
	if err != nil {
		return err
	}
	if hook := t.engine.ContextHook; hook != nil {
		hook(t.table.Name, contextJSON)
	}
	q, err := tables.ParseContext(contextJSON)
	if err != nil {
		return err
	}
	c.rows, err = t.engine.runner.Generate(t.ctx, t.table.Name, q)
	return err
}

func (c *cursor) Next() error { c.pos++; return nil }
func (c *cursor) Eof() bool   { return c.pos >= len(c.rows) }

// Column converts the generated string as osqueryd does for the column type.
func (c *cursor) Column(i int) (vtab.Value, error) {
	if c.Eof() || i < 0 || i >= len(c.table.table.Columns) {
		return nil, fmt.Errorf("%s: no column %d in row %d", c.table.table.Name, i, c.pos)
	}
	return columnValue(c.table.table.Columns[i].Type, c.rows[c.pos].Value(i)), nil
}

func (c *cursor) Rowid() (int64, error) {
	if c.Eof() {
		return 0, fmt.Errorf("%s: no row %d", c.table.table.Name, c.pos)
	}
	if c.rowids == nil { // only multi-index OR plans ask
		ids := tables.NewRowIDs(c.table.table, len(c.rows))
		c.rowids = make([]int64, len(c.rows))
		for i, r := range c.rows {
			c.rowids[i] = ids.Next(r)
		}
	}
	return c.rowids[c.pos], nil
}
func (c *cursor) Close() error { return nil }
