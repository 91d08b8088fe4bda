package main

import (
	"context"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/osquery/osquery-go/gen/osquery"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// reply is the answer to one call: an error, maps (the columns action) or
// a generate's rows, which stay in column order until they are written.
type reply struct {
	err   error
	named osquery.ExtensionPluginResponse
	table *tables.Table
	rows  []tables.Row
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
		return len(r.rows)
	}
	return len(r.named)
}

// response is the reply as the generated code's type.
func (r *reply) response() *osquery.ExtensionResponse {
	named := r.named
	if r.table != nil {
		named = r.table.Named(r.rows, r.q)
	}
	return &osquery.ExtensionResponse{Status: r.status(), Response: named}
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
	if err := r.write(ctx, out, seqID); err != nil {
		return false, thrift.WrapTException(err)
	}
	return true, nil
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
		func() error { return r.writeRows(ctx, out) },
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

// writeRows writes the response list: a map per row of the columns the
// query reads.
func (r *reply) writeRows(ctx context.Context, out thrift.TProtocol) error {
	if err := out.WriteListBegin(ctx, thrift.MAP, r.len()); err != nil {
		return err
	}
	if r.table == nil {
		for _, m := range r.named {
			if err := writeMap(ctx, out, len(m), func(yield func(k, v string) bool) {
				for k, v := range m {
					if !yield(k, v) {
						return
					}
				}
			}); err != nil {
				return err
			}
		}
		return out.WriteListEnd(ctx)
	}
	used := r.table.Used(r.q)
	for _, row := range r.rows {
		if err := writeMap(ctx, out, len(used), func(yield func(k, v string) bool) {
			for _, i := range used {
				if !yield(r.table.Columns[i].Name, row.Value(i)) {
					return
				}
			}
		}); err != nil {
			return err
		}
	}
	return out.WriteListEnd(ctx)
}

// writeMap writes a map<string,string> of n entries.
func writeMap(ctx context.Context, out thrift.TProtocol, n int, entries func(yield func(k, v string) bool)) error {
	if err := out.WriteMapBegin(ctx, thrift.STRING, thrift.STRING, n); err != nil {
		return err
	}
	var err error
	entries(func(k, v string) bool {
		if err = out.WriteString(ctx, k); err == nil {
			err = out.WriteString(ctx, v)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	return out.WriteMapEnd(ctx)
}
