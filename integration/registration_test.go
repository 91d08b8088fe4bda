package integration_test

import (
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/osquery/osquery-go/gen/osquery"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// registerTimeout is generous: the first launch of a -race build is slow.
const registerTimeout = 20 * time.Second

// launch starts the extension under a fresh manager and waits for its
// registration.
func launch(t *testing.T, verbose bool, extra ...string) (*standin.Manager, *standin.Process, *standin.Extension) {
	t.Helper()
	m := standin.New(t)
	p, ext := launchUnder(t, m, verbose, extra...)
	return m, p, ext
}

// launchUnder is launch under a manager of the caller's.
func launchUnder(t *testing.T, m *standin.Manager, verbose bool, extra ...string) (*standin.Process, *standin.Extension) {
	t.Helper()
	p := m.Launch(t, standin.BuildBinary(t), verbose, extra...)
	ext, err := m.WaitRegistered("fanotify", registerTimeout)
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, p.Stderr())
	}
	return p, ext
}

// productTables are the tables the binary is built with.
func productTables(t *testing.T) []*tables.Table {
	env := tables.NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(env.Close)
	return tables.All(env)
}

// wantRoutes is the wire form of a table's columns: name, type, option bits.
func wantRoutes(tbl *tables.Table) osquery.ExtensionPluginResponse {
	routes := osquery.ExtensionPluginResponse{}
	for _, c := range tbl.Columns {
		routes = append(routes, map[string]string{
			"id": "column", "name": c.Name, "type": string(c.Type),
			"op": strconv.FormatUint(uint64(c.Options()), 10),
		})
	}
	return routes
}

func TestRegistersEveryTable(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		t.Run("verbose="+strconv.FormatBool(verbose), func(t *testing.T) {
			m, _, ext := launch(t, verbose)
			if ext.Info.Version != standin.BuildVersion {
				t.Errorf("registered version %q, want the one stamped at build time, %q", ext.Info.Version, standin.BuildVersion)
			}
			registered := ext.Registry["table"]
			want := productTables(t)
			if len(registered) != len(want) {
				t.Errorf("registered %d tables, the binary has %d", len(registered), len(want))
			}
			for _, tbl := range want {
				assertRoutes(t, tbl.Name, registered[tbl.Name], wantRoutes(tbl))
				cols, err := m.Columns(tbl.Name)
				if err != nil {
					t.Errorf("columns %s: %v", tbl.Name, err)
					continue
				}
				assertRoutes(t, tbl.Name+" columns action", cols, wantRoutes(tbl))
			}
		})
	}
}

func assertRoutes(t *testing.T, what string, got, want osquery.ExtensionPluginResponse) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d routes, want %d: %v", what, len(got), len(want), got)
		return
	}
	for i := range want {
		for k, v := range want[i] {
			if got[i][k] != v {
				t.Errorf("%s: route %d %s = %q, want %q", what, i, k, got[i][k], v)
			}
		}
	}
}
