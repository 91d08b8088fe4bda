package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeConfig writes doc as a configuration file and returns its path.
func writeConfig(t *testing.T, doc any) string {
	t.Helper()
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "fanotify.json")
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// namedConfig is --config path.
func namedConfig(path string) configFlag {
	return configFlag{path: path, given: true}
}

func writeCollectorConfig(t *testing.T, paths ...string) string {
	return writeConfig(t, map[string]any{"collector": map[string]any{"paths": paths}})
}

// With --watch the query sees the events of the watch period, though the
// configuration leaves the collector disabled.
func TestQueryWatchCollectsBeforeTheQuery(t *testing.T) {
	dir := t.TempDir()
	cfg := writeCollectorConfig(t, dir)

	// Touch files from another process until the query returns: the first
	// ones may come before the collector has marked dir.
	done := make(chan struct{})
	touched := make(chan struct{})
	go func() {
		defer close(touched)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
				exec.Command("touch", filepath.Join(dir, "f"+strconv.Itoa(i))).Run()
			}
		}
	}()
	var out bytes.Buffer
	err := runSQL(&out, "SELECT path, action FROM fanotify_events", namedConfig(cfg), true, false, time.Second)
	close(done)
	<-touched
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]string
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	creates := 0
	for _, r := range rows {
		if strings.HasPrefix(r["path"], dir+"/f") && strings.Contains(r["action"], "CREATE") {
			creates++
		}
	}
	if creates == 0 {
		t.Errorf("no CREATE rows under %s: %s", dir, out.String())
	}
}

// A --config that does not exist is an error, not the defaults: --watch
// would blame collector.paths, a query would run on other thresholds.
func TestQueryMissingConfigIsAnError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "fanotify.jsn")
	err := runSQL(&bytes.Buffer{}, "SELECT 1", namedConfig(missing), false, false, time.Second)
	if err == nil || !strings.Contains(err.Error(), missing+": no such file") {
		t.Errorf("error %v, want one naming %s", err, missing)
	}
}

func TestQueryWatchNeedsPaths(t *testing.T) {
	err := runSQL(&bytes.Buffer{}, "SELECT 1", namedConfig(writeCollectorConfig(t)), false, false, time.Second)
	if err == nil || !strings.Contains(err.Error(), "collector.paths") {
		t.Errorf("error %v, want one naming collector.paths", err)
	}
}

// Without --watch the query holds no fanotify group, though the
// configuration enables the collector: the group and its marks would count
// in the usage the query reports.
func TestQueryWithoutWatchRunsNoCollector(t *testing.T) {
	cfg := writeConfig(t, map[string]any{"collector": map[string]any{"enabled": true, "paths": []string{t.TempDir()}}})
	var out bytes.Buffer
	sql := "SELECT group_id FROM fanotify_groups WHERE pid = " + strconv.Itoa(os.Getpid())
	if err := runSQL(&out, sql, namedConfig(cfg), false, false, 0); err != nil {
		t.Fatal(err)
	}
	if out.Len() > 0 {
		t.Errorf("the query holds a fanotify group:\n%s", out.String())
	}
}
