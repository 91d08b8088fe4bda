package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// roundTrip writes r as callProcessor does and reads it back with the
// generated code, as osqueryd's client would.
func roundTrip(t *testing.T, r *reply) (int32, *osquery.ExtensionResponse) {
	t.Helper()
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	if err := r.write(ctx, thrift.NewTBinaryProtocolConf(buf, nil), 7); err != nil {
		t.Fatal(err)
	}
	in := thrift.NewTBinaryProtocolConf(buf, nil)
	name, kind, seq, err := in.ReadMessageBegin(ctx)
	if err != nil || name != "call" || kind != thrift.REPLY {
		t.Fatalf("message %q kind %d: %v", name, kind, err)
	}
	var result osquery.ExtensionCallResult
	if err := result.Read(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := in.ReadMessageEnd(ctx); err != nil || buf.Len() != 0 {
		t.Fatalf("%d bytes left after the message (%v)", buf.Len(), err)
	}
	return seq, result.Success
}

func sameResponse(got, want *osquery.ExtensionResponse) bool {
	return got.Status.Code == want.Status.Code && got.Status.Message == want.Status.Message &&
		slices.EqualFunc(got.Response, want.Response, maps.Equal)
}

// The streamed encoding carries what the generated type would: the
// columns the query reads, in every row, and only those.
func TestReplyWritesWhatTheGeneratedCodeReads(t *testing.T) {
	tbl := &tables.Table{Name: "t", Columns: []table.ColumnDefinition{
		table.TextColumn("a"), table.BigIntColumn("b"), table.TextColumn("c", table.HiddenColumn()),
	}}
	rows := rowsOf(tbl.Row(tables.Values{"a": "x", "b": "1", "c": "secret"}), tbl.Row(tables.Values{"a": "", "b": ""}), tables.Row{})
	for _, r := range []*reply{
		{table: tbl, rows: rows, q: tables.NewQueryContext(nil, []string{"a", "b"})},
		{table: tbl, rows: rows, q: tables.NewQueryContext(nil, []string{})},
		{table: tbl, rows: rowsOf(), q: tables.NewQueryContext(nil, nil)},
		{table: tbl, rows: rows, q: tables.NewQueryContext(byB, []string{"a", "b"})},
		{named: osquery.ExtensionPluginResponse{{"id": "column", "name": "a", "type": "TEXT"}}},
		{err: errors.New("t: unknown action")},
	} {
		seq, got := roundTrip(t, r)
		if want := r.response(); seq != 7 || !sameResponse(got, want) {
			t.Errorf("seq %d\n got %+v %v\nwant %+v %v", seq, got.Status, got.Response, want.Status, want.Response)
		}
	}
	_, got := roundTrip(t, &reply{table: tbl, rows: rows, q: tables.NewQueryContext(nil, []string{"a", "b"})})
	if want := (map[string]string{"a": "x", "b": "1"}); !maps.Equal(got.Response[0], want) {
		t.Errorf("first row %v, want %v", got.Response[0], want)
	}
}

// byB is a constraint on column b of the tests' tables.
var byB = map[string][]tables.Constraint{"b": {{Op: tables.OpEquals, Expr: "1"}}}

// A constrained generate's rows carry rowids derived from their content,
// which osqueryd takes in place of its numbers from 0, so that the
// generates of a multi-index OR do not collide; an unconstrained one, never
// part of such an OR, carries none.
func TestReplyCarriesRowIDsWhenConstrained(t *testing.T) {
	tbl := &tables.Table{Name: "t", Columns: []table.ColumnDefinition{table.TextColumn("a"), table.BigIntColumn("b")}}
	rows := []tables.Row{tables.RowOf("x", "1"), tables.RowOf("y", "1"), tables.RowOf("x", "1")}
	_, got := roundTrip(t, &reply{table: tbl, rows: rowsOf(rows...), q: tables.NewQueryContext(byB, nil)})
	ids := tables.NewRowIDs(tbl, len(rows))
	seen := map[string]bool{}
	for i, r := range got.Response {
		id := r[tables.RowIDKey]
		if want := strconv.FormatInt(ids.Next(rows[i]), 10); id != want || seen[id] {
			t.Errorf("row %d %v: rowid %q, want %s, distinct from %v", i, r, id, want, seen)
		}
		seen[id] = true
	}
	_, got = roundTrip(t, &reply{table: tbl, rows: rowsOf(rows...), q: tables.NewQueryContext(nil, nil)})
	if _, ok := got.Response[0][tables.RowIDKey]; ok {
		t.Errorf("unconstrained row %v carries a rowid", got.Response[0])
	}
}

// rowsOf are rows already built, as a generate returns them.
func rowsOf(rows ...tables.Row) tables.Rows {
	return tables.Rows{Len: len(rows), All: slices.Values(rows)}
}

// failingTransport refuses every write, as a connection osqueryd closed.
type failingTransport struct{ *thrift.TMemoryBuffer }

func (failingTransport) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// Rows built as they are written stop being built at the first write that
// fails: osqueryd is gone.
func TestReplyStopsBuildingRowsAtTheFirstWriteError(t *testing.T) {
	tbl := &tables.Table{Name: "t", Columns: []table.ColumnDefinition{table.TextColumn("a")}}
	built := 0
	r := &reply{table: tbl, q: tables.NewQueryContext(nil, nil), rows: tables.Rows{Len: 100000, All: func(yield func(tables.Row) bool) {
		for i := range 100000 {
			built++
			if !yield(tables.RowOf(strconv.Itoa(i))) {
				return
			}
		}
	}}}
	out := thrift.NewTBinaryProtocolConf(failingTransport{thrift.NewTMemoryBuffer()}, nil)
	if err := r.writeRows(out); err == nil {
		t.Fatal("rows written through a transport that refuses every write")
	}
	// The first write goes out when 64 KiB are encoded: about 4,700 rows.
	if built > 10000 {
		t.Errorf("%d of 100000 rows built after the first write failed", built)
	}
}

// A stream that yields fewer rows than it announced fails the reply rather
// than leave osqueryd waiting for the rest.
func TestReplyRefusesAShortStream(t *testing.T) {
	tbl := &tables.Table{Name: "t", Columns: []table.ColumnDefinition{table.TextColumn("a")}}
	r := &reply{table: tbl, q: tables.NewQueryContext(nil, nil),
		rows: tables.Rows{Len: 3, All: slices.Values([]tables.Row{tables.RowOf("x"), tables.RowOf("y")})}}
	err := r.write(context.Background(), thrift.NewTBinaryProtocolConf(thrift.NewTMemoryBuffer(), nil), 1)
	if err == nil || !strings.Contains(err.Error(), "2 rows written after announcing 3") {
		t.Fatalf("error %v, want the rows missing", err)
	}
}

// Rows are encoded in the binary protocol's format, which is what the
// server speaks; any other protocol gets an error, not a garbled reply.
func TestReplyNeedsTheBinaryProtocol(t *testing.T) {
	tbl := &tables.Table{Name: "t", Columns: []table.ColumnDefinition{table.TextColumn("a")}}
	r := &reply{table: tbl, rows: rowsOf(tables.RowOf("x")), q: tables.NewQueryContext(nil, nil)}
	out := thrift.NewTCompactProtocolConf(thrift.NewTMemoryBuffer(), nil)
	if err := r.write(context.Background(), out, 1); err == nil {
		t.Fatal("rows written through the compact protocol")
	}
}

// BenchmarkReplyWrite encodes the reply of a 50,000-row generate of 15
// columns, as a per-mark table's SELECT * sends it to osqueryd.
func BenchmarkReplyWrite(b *testing.B) {
	var cols []table.ColumnDefinition
	for i := range 15 {
		cols = append(cols, table.TextColumn("column_"+strconv.Itoa(i)))
	}
	rows := make([]tables.Row, 50000)
	for i := range rows {
		values := make([]string, len(cols))
		for j := range values {
			values[j] = strconv.Itoa(i * j)
		}
		rows[i] = tables.RowOf(values...)
	}
	r := &reply{table: &tables.Table{Name: "t", Columns: cols}, rows: rowsOf(rows...), q: tables.NewQueryContext(nil, nil)}
	out := thrift.NewTBinaryProtocolConf(thrift.NewTBufferedTransport(thrift.NewStreamTransportW(io.Discard), 64<<10), nil)
	for b.Loop() {
		if err := r.write(context.Background(), out, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// A panic while rows are built as they are written closes that connection,
// logged, and the extension serves the next call.
func TestPanicBuildingRowsEndsTheCallOnly(t *testing.T) {
	cols := []table.ColumnDefinition{table.TextColumn("a")}
	rowsThatPanic := func(context.Context, tables.QueryContext) (tables.Rows, error) {
		return tables.Rows{Len: 1, All: func(func(tables.Row) bool) { panic("kaput") }}, nil
	}
	rowsThatWork := func(context.Context, tables.QueryContext) (tables.Rows, error) { return rowsOf(tables.RowOf("x")), nil }
	var logged strings.Builder
	log := slog.New(slog.NewTextHandler(&logged, nil))
	runner := tables.NewRunner([]*tables.Table{
		{Name: "boom", Columns: cols, Stream: rowsThatPanic},
		{Name: "fine", Columns: cols, Stream: rowsThatWork},
	}, time.Minute, 4, log)
	p := callProcessor{newHandler(runner, log)}
	if ok, x := processCall(t, p, "boom", thrift.NewTMemoryBuffer()); ok || x == nil || !strings.Contains(x.Error(), "boom: internal error: kaput") {
		t.Fatalf("call of boom: ok %v, exception %v; want the panic as an exception", ok, x)
	}
	if !strings.Contains(logged.String(), "building rows panicked") || !strings.Contains(logged.String(), "stack=") {
		t.Errorf("log lacks the panic and its stack:\n%s", logged.String())
	}
	if ok, x := processCall(t, p, "fine", thrift.NewTMemoryBuffer()); !ok || x != nil {
		t.Fatalf("call of fine after the panic: ok %v, exception %v", ok, x)
	}
}

// A reply osqueryd did not get, having closed the connection, is logged:
// the call's own log line came before its rows were written.
func TestUndeliveredReplyIsLogged(t *testing.T) {
	var logged strings.Builder
	// Without --verbose the extension logs warnings and errors only.
	log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))
	runner := tables.NewRunner([]*tables.Table{{Name: "rows", Columns: []table.ColumnDefinition{table.TextColumn("a")},
		Stream: func(context.Context, tables.QueryContext) (tables.Rows, error) { return rowsOf(tables.RowOf("x")), nil }}}, time.Minute, 4, log)
	if ok, _ := processCall(t, callProcessor{newHandler(runner, log)}, "rows", failingTransport{thrift.NewTMemoryBuffer()}); ok {
		t.Fatal("a reply written through a transport that refuses every write")
	}
	if want := `msg="reply not delivered" item=rows err="broken pipe"`; !strings.Contains(logged.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logged.String())
	}
}

// processCall has p serve osqueryd's call() of a generate of item, its
// reply written to out.
func processCall(t *testing.T, p callProcessor, item string, out thrift.TTransport) (bool, thrift.TException) {
	t.Helper()
	ctx := context.Background()
	in := thrift.NewTBinaryProtocolConf(thrift.NewTMemoryBuffer(), nil)
	args := osquery.ExtensionCallArgs{Registry: "table", Item: item, Request: osquery.ExtensionPluginRequest{"action": "generate"}}
	if err := args.Write(ctx, in); err != nil {
		t.Fatal(err)
	}
	return p.Process(ctx, 1, in, thrift.NewTBinaryProtocolConf(out, nil))
}
