package main

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"testing"

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
	rows := []tables.Row{tbl.Row(tables.Values{"a": "x", "b": "1", "c": "secret"}), tbl.Row(tables.Values{"a": "", "b": ""}), {}}
	for _, r := range []*reply{
		{table: tbl, rows: rows, q: tables.NewQueryContext(nil, []string{"a", "b"})},
		{table: tbl, rows: rows, q: tables.NewQueryContext(nil, []string{})},
		{table: tbl, rows: nil, q: tables.NewQueryContext(nil, nil)},
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

// Rows are encoded in the binary protocol's format, which is what the
// server speaks; any other protocol gets an error, not a garbled reply.
func TestReplyNeedsTheBinaryProtocol(t *testing.T) {
	tbl := &tables.Table{Name: "t", Columns: []table.ColumnDefinition{table.TextColumn("a")}}
	r := &reply{table: tbl, rows: []tables.Row{tables.RowOf("x")}, q: tables.NewQueryContext(nil, nil)}
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
	r := &reply{table: &tables.Table{Name: "t", Columns: cols}, rows: rows, q: tables.NewQueryContext(nil, nil)}
	out := thrift.NewTBinaryProtocolConf(thrift.NewTBufferedTransport(thrift.NewStreamTransportW(io.Discard), 64<<10), nil)
	for b.Loop() {
		if err := r.write(context.Background(), out, 1); err != nil {
			b.Fatal(err)
		}
	}
}
