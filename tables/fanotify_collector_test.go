package tables

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
)

// collectorRunner starts an Env whose collector watches paths, and a
// runner over every table.
func collectorRunner(t *testing.T, paths ...string) *Runner {
	t.Helper()
	cfg := config.Default()
	cfg.Collector.Enabled = len(paths) > 0
	cfg.Collector.Paths = paths
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	env := NewEnv(cfg, log)
	t.Cleanup(env.Close)
	return NewRunner(All(env), 30*time.Second, 2, log)
}

// touch creates path from another process (the collector ignores its own)
// and returns that process's pid.
func touch(t *testing.T, path string) string {
	t.Helper()
	cmd := exec.Command("touch", path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("touch: %v: %s", err, out)
	}
	return strconv.Itoa(cmd.Process.Pid)
}

// waitEventRow waits for the CREATE row of path.
func waitEventRow(t *testing.T, r *Runner, path string) namedRow {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, row := range query(t, r, "fanotify_events", nil, nil) {
			if row["path"] == path && strings.Contains(row["action"], "CREATE") {
				return row
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CREATE row for %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func eids(rows []namedRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r["eid"])
	}
	slices.Sort(out)
	return out
}

func TestFanotifyEventsTimeAndEidConstraints(t *testing.T) {
	dir := t.TempDir()
	r := collectorRunner(t, dir)
	early := filepath.Join(dir, "early")
	pid := touch(t, early)
	earlyRow := waitEventRow(t, r, early)
	if earlyRow["pid"] != pid || earlyRow["watch_path"] != dir || earlyRow["overflow"] != "0" || len(earlyRow["eid"]) != 10 {
		t.Errorf("row %v: want pid %s, watch_path %s, overflow 0, a 10-digit eid", earlyRow, pid, dir)
	}
	earlySec, _ := strconv.ParseInt(earlyRow["time"], 10, 64)
	for time.Now().Unix() <= earlySec {
		time.Sleep(20 * time.Millisecond)
	}
	late := filepath.Join(dir, "late")
	touch(t, late)
	waitEventRow(t, r, late)

	all := query(t, r, "fanotify_events", nil, nil)
	// osqueryd's calls take the rows as they are built, a chunk at a time.
	q := NewQueryContext(nil, nil)
	streamed, err := r.Stream(context.Background(), "fanotify_events", q)
	if err != nil {
		t.Fatal(err)
	}
	tbl, _ := r.Table("fanotify_events")
	if got := tbl.Named(streamed.All, q); len(got) != streamed.Len || fmt.Sprint(got) != fmt.Sprint(all) {
		t.Errorf("streamed rows (%d announced) %v, want the generate's %v", streamed.Len, got, all)
	}
	var wantLater, wantEarly []namedRow
	for _, row := range all {
		if sec, _ := strconv.ParseInt(row["time"], 10, 64); sec > earlySec {
			wantLater = append(wantLater, row)
		} else {
			wantEarly = append(wantEarly, row)
		}
	}
	sec := strconv.FormatInt(earlySec, 10)
	later := query(t, r, "fanotify_events", map[string][]Constraint{"time": {{Op: OpGreater, Expr: sec}}}, nil)
	if got, want := eids(later), eids(wantLater); !slices.Equal(got, want) || len(rowsWhere(later, "path", late)) == 0 {
		t.Errorf("time > %s: eids %v, want %v including %s", sec, got, want, late)
	}
	notLater := query(t, r, "fanotify_events", map[string][]Constraint{"time": {{Op: OpLessEq, Expr: sec}}}, nil)
	if got, want := eids(notLater), eids(wantEarly); !slices.Equal(got, want) || len(rowsWhere(notLater, "path", early)) == 0 {
		t.Errorf("time <= %s: eids %v, want %v including %s", sec, got, want, early)
	}
	byID := query(t, r, "fanotify_events", equals("eid", earlyRow["eid"]), nil)
	if len(byID) != 1 || byID[0]["eid"] != earlyRow["eid"] {
		t.Errorf("eid = %s: %v", earlyRow["eid"], byID)
	}
}

func TestFanotifyCollectorRows(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	r := collectorRunner(t, dir, missing)
	rows := query(t, r, "fanotify_collector", nil, nil)
	if len(rows) != 2 {
		t.Fatalf("rows %v, want one per configured path", rows)
	}
	ok, failed := rowsWhere(rows, "path", dir), rowsWhere(rows, "path", missing)
	if len(ok) != 1 || ok[0]["status"] != fanotify.StatusActive || ok[0]["strategy"] != "filesystem" || ok[0]["marks"] != "1" {
		t.Errorf("watched path: %v", ok)
	}
	if len(failed) != 1 || failed[0]["status"] != fanotify.StatusFailed || !strings.Contains(failed[0]["error"], "no such file") {
		t.Errorf("missing path: %v", failed)
	}
	for _, row := range rows {
		if !strings.HasPrefix(row["group_flags_names"], "FAN_CLASS_NOTIF|") || row["buffer_max"] != "50000" {
			t.Errorf("row %v: want a FAN_CLASS_NOTIF group and buffer_max 50000", row)
		}
	}
}

func TestFanotifyCollectorDisabled(t *testing.T) {
	r := collectorRunner(t)
	rows := query(t, r, "fanotify_collector", nil, nil)
	if len(rows) != 1 || rows[0]["status"] != fanotify.StatusDisabled || rows[0]["error"] != "" {
		t.Errorf("rows %v, want one disabled row without an error", rows)
	}
	if rows := query(t, r, "fanotify_events", nil, nil); len(rows) != 0 {
		t.Errorf("events without a collector: %v", rows)
	}
}

func TestFanotifyFeaturesRows(t *testing.T) {
	r := collectorRunner(t)
	rows := query(t, r, "fanotify_features", nil, nil)
	if len(rows) != len(fanotify.Features()) {
		t.Fatalf("%d rows for %d features", len(rows), len(fanotify.Features()))
	}
	for _, row := range rows {
		if row["name"] == "" || row["since_version"] == "" || !slices.Contains([]string{"0", "1"}, row["expected"]) ||
			!slices.Contains([]string{"", "0", "1"}, row["supported"]) || (row["supported"] != "1" && row["probe_detail"] == "") {
			t.Errorf("row %v", row)
		}
	}
	if fid := rowsWhere(rows, "name", "FAN_REPORT_FID"); len(fid) != 1 || fid[0]["supported"] != "1" {
		t.Errorf("FAN_REPORT_FID on this kernel: %v", fid)
	}
}

// A rejected configuration file leaves the collector off, whatever the
// file said: the disabled row says why, naming the key.
func TestFanotifyCollectorDisabledByARejectedFile(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	env := NewEnv(config.Default(), log)
	t.Cleanup(env.Close)
	env.ConfigError = errors.New(`config /etc/osquery/fanotify.json: key "risk_critical_pct": must be above risk_warning_pct and at most 100`)
	rows := query(t, NewRunner(All(env), 30*time.Second, 2, log), "fanotify_collector", nil, nil)
	want := `configuration file rejected, running on the defaults: config /etc/osquery/fanotify.json: key "risk_critical_pct"`
	if len(rows) != 1 || rows[0]["status"] != fanotify.StatusDisabled || !strings.HasPrefix(rows[0]["error"], want) {
		t.Errorf("rows %v, want one disabled row whose error begins %s", rows, want)
	}
}
