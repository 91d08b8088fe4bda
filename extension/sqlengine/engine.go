// Package sqlengine runs SQL over the extension's tables without osqueryd.
//
// Every table becomes a SQLite virtual table (modernc.org/sqlite, pure Go)
// that behaves as osqueryd's virtual tables do (osquery/sql/virtual_table.cpp):
// the same constraints are pushed to the same columns, the generate receives
// the same context JSON and goes through the same tables.ParseContext and
// tables.Runner as in osquery mode, SQLite re-applies every filter, and
// generated strings become SQLite values with osqueryd's conversions.
//
// A row's rowid is derived from its content (tables.RowIDs), the rowid the
// extension sends osqueryd with a constrained generate's rows, so that
// SQLite's multi-index OR returns what a plain scan returns.
//
// One difference is deliberate: modernc's vtab API does not expose
// sqlite3_vtab_in, so an IN list on an OPTIMIZED column costs one generate
// per value here, where osqueryd ≥ 5.14 makes one generate holding every
// value. The rows are the same.
package sqlengine

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	sqlite "modernc.org/sqlite"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// Engine answers SQL queries over the tables of a runner.
type Engine struct {
	runner  *tables.Runner
	db      *sql.DB
	queries sync.Map // query id -> context.Context of the running query
	lastID  atomic.Uint64

	// ContextHook, when set before the first query, receives the table name
	// and context JSON of every generate, as osqueryd would send them.
	ContextHook func(table, contextJSON string)
}

// Result is the outcome of a query. Values are SQLite's text rendering of
// each value; NULL is "", as in osqueryi's output.
type Result struct {
	Columns []string
	Rows    [][]string
}

// New registers one virtual table module per table on a driver of the
// engine's own, so modules never leak into other SQLite users of the process.
func New(runner *tables.Runner) (*Engine, error) {
	e := &Engine{runner: runner}
	d := &sqlite.Driver{}
	if err := registerFunctions(d); err != nil {
		return nil, err
	}
	for _, t := range runner.Tables() {
		if err := d.RegisterModule(t.Name, &module{engine: e, table: t}); err != nil {
			return nil, fmt.Errorf("table %s: %w", t.Name, err)
		}
	}
	e.db = sql.OpenDB(connector{d})
	// Every query gets a fresh connection: SQLite attaches modules to a
	// connection when it opens, and the tables are created per query.
	e.db.SetMaxIdleConns(0)
	return e, nil
}

// Close releases the engine's connections.
func (e *Engine) Close() error { return e.db.Close() }

// Query runs SQL (several statements run in turn; the last one's rows are
// returned) on a connection of its own with every table attached.
func (e *Engine) Query(ctx context.Context, query string) (*Result, error) {
	conn, err := e.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	id := strconv.FormatUint(e.lastID.Add(1), 10)
	e.queries.Store(id, ctx)
	defer e.queries.Delete(id)
	for _, t := range e.runner.Tables() {
		create := fmt.Sprintf("CREATE VIRTUAL TABLE temp.%s USING %s(%s)", quoteIdent(t.Name), quoteIdent(t.Name), id)
		if _, err := conn.ExecContext(ctx, create); err != nil {
			return nil, fmt.Errorf("attaching table %s: %w", t.Name, err)
		}
	}

	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, sqliteMessage(err)
	}
	defer rows.Close()
	res, err := collect(rows)
	if err != nil {
		return nil, sqliteMessage(err)
	}
	return res, nil
}

// sqliteMessage reduces the driver's "<errstr>: <errmsg> (<code>)" to
// SQLite's own message, as the sqlite3 shell and osqueryi print it.
// sqlite3_errstr texts never contain ": ".
func sqliteMessage(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	msg := strings.TrimSuffix(se.Error(), " (SQLITE_BUSY)")
	msg = strings.TrimSuffix(msg, fmt.Sprintf(" (%d)", se.Code()))
	if _, errmsg, ok := strings.Cut(msg, ": "); ok {
		msg = errmsg
	}
	return errors.New(msg)
}

func collect(rows *sql.Rows) (*Result, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: cols, Rows: [][]string{}}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i], _ = sqliteText(v)
		}
		res.Rows = append(res.Rows, row)
	}
	return res, rows.Err()
}

// connector opens in-memory databases on the engine's driver.
type connector struct{ d *sqlite.Driver }

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(":memory:") }
func (c connector) Driver() driver.Driver                        { return c.d }
