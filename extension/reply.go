package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/osquery/osquery-go/gen/osquery"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// reply is the answer to one call: an error, maps (the columns action) or
// a generate's rows, which stay in column order until they are written and,
// for the tables that stream them, are built as they are written.
type reply struct {
	err   error
	named osquery.ExtensionPluginResponse
	table *tables.Table
	rows  tables.Rows
	q     tables.QueryContext
}

func (r *reply) status() *osquery.ExtensionStatus {
	if r.err != nil {
		return &osquery.ExtensionStatus{Code: 1, Message: r.err.Error()}
	}
	return &osquery.ExtensionStatus{Code: 0, Message: "OK"}
}

func (r *reply) len() int {
	if r.table != nil {
		return r.rows.Len
	}
	return len(r.named)
}

// response is the reply as the generated code's type.
func (r *reply) response() *osquery.ExtensionResponse {
	named := r.named
	if r.table != nil {
		named = r.namedRows()
	}
	return &osquery.ExtensionResponse{Status: r.status(), Response: named}
}

// namedRows are the rows as writeRows writes them.
func (r *reply) namedRows() []map[string]string {
	ids := r.rowIDs()
	var rowids []string
	rows := func(yield func(tables.Row) bool) {
		for row := range r.rows.All {
			if ids != nil {
				rowids = append(rowids, strconv.FormatInt(ids.Next(row), 10))
			}
			if !yield(row) {
				return
			}
		}
	}
	named := r.table.Named(rows, r.q)
	for i, id := range rowids {
		named[i][tables.RowIDKey] = id
	}
	return named
}

// rowIDs gives a generate's rows their rowids when it had constraints, and
// is nil otherwise. SQLite needs the rowids of an extension table only to
// merge the generates of a multi-index OR, and plans one only when each
// branch has a usable constraint, which osqueryd forwards; an unconstrained
// generate, such as a SELECT * of 50,000 marks, skips hashing every row.
// One branch escapes: osqueryd drops a constraint whose value is NULL or
// the empty string (xFilter), so that branch's generate arrives
// unconstrained and osqueryd numbers its rows from 0; a row that both
// branches return then comes twice (none is lost: numbers and hashes do not
// meet).
func (r *reply) rowIDs() *tables.RowIDs {
	if !r.q.Constrained() {
		return nil
	}
	return tables.NewRowIDs(r.table, r.rows.Len)
}

// callProcessor serves osqueryd's call() as the generated processor does,
// but writes a generate's rows straight from the table's Rows: building a
// map per row only to encode it cost a third of a per-mark generate.
type callProcessor struct{ h *handler }

func (p callProcessor) Process(ctx context.Context, seqID int32, in, out thrift.TProtocol) (bool, thrift.TException) {
	var args osquery.ExtensionCallArgs
	if err := args.Read(ctx, in); err != nil {
		in.ReadMessageEnd(ctx)
		x := thrift.NewTApplicationException(thrift.PROTOCOL_ERROR, err.Error())
		out.WriteMessageBegin(ctx, "call", thrift.EXCEPTION, seqID)
		x.Write(ctx, out)
		out.WriteMessageEnd(ctx)
		out.Flush(ctx)
		return false, thrift.WrapTException(err)
	}
	in.ReadMessageEnd(ctx)
	callCtx, cancel := cancelOnHangup(ctx, in.Transport())
	r := p.h.reply(callCtx, args.Registry, args.Item, args.Request)
	cancel()
	if err := p.write(ctx, r, args.Item, out, seqID); err != nil {
		// reply logged the call when its rows were counted, before they
		// were built and written.
		p.h.log.Warn("reply not delivered", "item", args.Item, "err", err)
		return false, thrift.WrapTException(err)
	}
	return true, nil
}

// write writes r. A streamed table builds its rows as they are written: a
// panic there comes after the row count went out, so rather than an error
// status osqueryd gets a connection closed mid-reply, and the extension
// keeps serving.
func (p callProcessor) write(ctx context.Context, r *reply, item string, out thrift.TProtocol, seqID int32) (err error) {
	defer func() {
		if v := recover(); v != nil {
			p.h.log.Error("building rows panicked", "table", item, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("%s: internal error: %v", item, v)
		}
	}()
	return r.write(ctx, out, seqID)
}

// cancelOnHangup returns a context that ends when osqueryd closes the
// connection, checked every thrift.ServerConnectivityCheckInterval, so that
// a generate nobody waits for stops early.
func cancelOnHangup(ctx context.Context, conn thrift.TTransport) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if thrift.ServerConnectivityCheckInterval <= 0 {
		return ctx, cancel
	}
	go func() {
		tick := time.NewTicker(thrift.ServerConnectivityCheckInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if !conn.IsOpen() {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}

// write sends the reply as the generated code encodes
// Extension.call's result: call_result{0: ExtensionResponse{1: status,
// 2: list<map<string,string>>}}.
func (r *reply) write(ctx context.Context, out thrift.TProtocol, seqID int32) error {
	for _, step := range []func() error{
		func() error { return out.WriteMessageBegin(ctx, "call", thrift.REPLY, seqID) },
		func() error { return out.WriteStructBegin(ctx, "call_result") },
		func() error { return out.WriteFieldBegin(ctx, "success", thrift.STRUCT, 0) },
		func() error { return out.WriteStructBegin(ctx, "ExtensionResponse") },
		func() error { return out.WriteFieldBegin(ctx, "status", thrift.STRUCT, 1) },
		func() error { return r.status().Write(ctx, out) },
		func() error { return out.WriteFieldEnd(ctx) },
		func() error { return out.WriteFieldBegin(ctx, "response", thrift.LIST, 2) },
		func() error { return r.writeRows(out) },
		func() error { return out.WriteFieldEnd(ctx) },
		func() error { return out.WriteFieldStop(ctx) }, // end of ExtensionResponse
		func() error { return out.WriteStructEnd(ctx) },
		func() error { return out.WriteFieldEnd(ctx) },
		func() error { return out.WriteFieldStop(ctx) }, // end of call_result
		func() error { return out.WriteStructEnd(ctx) },
		func() error { return out.WriteMessageEnd(ctx) },
		func() error { return out.Flush(ctx) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// writeRows writes the response list, a map<string,string> per row of the
// columns the query reads (and its rowid, see rowIDs), in the binary
// protocol's encoding straight into the transport: through the protocol,
// two interface calls and a closure per string cost as much as the generate
// of a per-mark table itself.
func (r *reply) writeRows(out thrift.TProtocol) error {
	if _, ok := out.(*thrift.TBinaryProtocol); !ok {
		return fmt.Errorf("call replies are encoded for the binary protocol, not %T", out)
	}
	w := listWriter{w: out.Transport()}
	w.begin(r.len())
	if r.table == nil {
		for _, m := range r.named {
			w.mapBegin(len(m))
			for k, v := range m {
				w.string(k)
				w.string(v)
			}
		}
		return w.flush()
	}
	used := r.table.Used(r.q)
	keys := make([][]byte, len(used)) // each column's name, encoded once
	for j, i := range used {
		keys[j] = appendString(nil, r.table.Columns[i].Name)
	}
	ids, width := r.rowIDs(), len(used)
	if ids != nil {
		width++
	}
	n := 0
	for row := range r.rows.All {
		if w.err != nil {
			break // osqueryd is gone: the rows left would be built for nobody
		}
		w.mapBegin(width)
		for j, i := range used {
			w.buf = append(w.buf, keys[j]...)
			w.string(row.Value(i))
		}
		if ids != nil {
			var rowid [20]byte // room for the longest int64
			w.buf = appendString(appendString(w.buf, tables.RowIDKey), strconv.AppendInt(rowid[:0], ids.Next(row), 10))
		}
		n++
	}
	if err := w.flush(); err != nil {
		return err
	}
	if n != r.rows.Len {
		return fmt.Errorf("%s: %d rows written after announcing %d", r.table.Name, n, r.rows.Len)
	}
	return nil
}

// listWriter encodes a list<map<string,string>> as TBinaryProtocol does,
// into a buffer written out whenever it holds 64 KiB.
type listWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func (l *listWriter) begin(n int) {
	l.buf = append(l.buf, byte(thrift.MAP))
	l.buf = binary.BigEndian.AppendUint32(l.buf, uint32(n))
}

func (l *listWriter) mapBegin(n int) {
	l.buf = append(l.buf, byte(thrift.STRING), byte(thrift.STRING))
	l.buf = binary.BigEndian.AppendUint32(l.buf, uint32(n))
	if len(l.buf) >= 64<<10 {
		l.flush()
	}
}

func (l *listWriter) string(s string) { l.buf = appendString(l.buf, s) }

// flush writes the buffer out, and returns the first error met.
func (l *listWriter) flush() error {
	if l.err == nil && len(l.buf) > 0 {
		_, l.err = l.w.Write(l.buf)
	}
	l.buf = l.buf[:0]
	return l.err
}

// appendString appends s as the binary protocol encodes a string: its
// length as a big-endian int32, then its bytes.
func appendString[S string | []byte](b []byte, s S) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
