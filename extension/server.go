package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// extensionName is the name osqueryd lists the extension under, as in
// --extensions_require=fanotify.
const extensionName = "fanotify"

// handler answers osqueryd on the extension socket. thrift serves each
// connection in its own goroutine, so calls arrive concurrently.
type handler struct {
	runner *tables.Runner
	routes osquery.ExtensionRouteTable
	log    *slog.Logger

	// shutdown is closed when osqueryd calls shutdown().
	shutdown     chan struct{}
	shutdownOnce sync.Once
}

func newHandler(runner *tables.Runner, log *slog.Logger) *handler {
	routes := osquery.ExtensionRouteTable{}
	for _, t := range runner.Tables() {
		routes[t.Name] = table.NewPlugin(t.Name, t.Columns, nil).Routes()
	}
	return &handler{runner: runner, routes: routes, log: log, shutdown: make(chan struct{})}
}

// registry is what registerExtension announces: every table with its columns.
func (h *handler) registry() osquery.ExtensionRegistry {
	return osquery.ExtensionRegistry{"table": h.routes}
}

// Ping answers osqueryd's health check.
func (h *handler) Ping(context.Context) (*osquery.ExtensionStatus, error) {
	return &osquery.ExtensionStatus{Code: 0, Message: "OK"}, nil
}

// Call serves the "columns" and "generate" actions of a table, as
// osquery.Extension asks. osqueryd's calls take callProcessor instead, which
// writes the same response without a map per row.
func (h *handler) Call(ctx context.Context, registry, item string, req osquery.ExtensionPluginRequest) (*osquery.ExtensionResponse, error) {
	return h.reply(ctx, registry, item, req).response(), nil
}

// reply answers one call and logs it. Failures go back to osqueryd as an
// error status; the extension keeps serving.
func (h *handler) reply(ctx context.Context, registry, item string, req osquery.ExtensionPluginRequest) *reply {
	begin := time.Now()
	r := h.call(ctx, registry, item, req)
	log := h.log.With("registry", registry, "item", item, "action", req["action"], "took", time.Since(begin))
	if r.err != nil {
		log.Debug("call failed", "err", r.err)
	} else {
		log.Debug("call", "rows", r.len())
	}
	return r
}

func (h *handler) call(ctx context.Context, registry, item string, req osquery.ExtensionPluginRequest) *reply {
	if registry != "table" {
		return &reply{err: fmt.Errorf("unknown registry %q: fanotify.ext serves only tables", registry)}
	}
	routes, ok := h.routes[item]
	if !ok {
		return &reply{err: fmt.Errorf("unknown table %q", item)}
	}
	switch action := req["action"]; action {
	case "columns":
		return &reply{named: routes}
	case "generate":
		q, err := tables.ParseContext(req["context"])
		if err != nil {
			return &reply{err: fmt.Errorf("%s: %w", item, err)}
		}
		rows, err := h.runner.Stream(ctx, item, q)
		if err != nil {
			return &reply{err: err}
		}
		t, _ := h.runner.Table(item)
		return &reply{table: t, rows: rows, q: q}
	default:
		return &reply{err: fmt.Errorf("%s: unknown action %q (want columns or generate)", item, action)}
	}
}

// Shutdown is osqueryd asking the extension to exit.
func (h *handler) Shutdown(context.Context) error {
	h.shutdownOnce.Do(func() { close(h.shutdown) })
	return nil
}
