package integration_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
)

// queryCommand runs `fanotify.ext query ARGS...` and returns stdout, stderr and
// the exit code.
func queryCommand(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(standin.BuildBinary(t), append([]string{"query", "--config", defaultsConfig(t)}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// defaultsConfig is a configuration file, readable by every user, that
// keeps every default: the host's /etc/osquery/fanotify.json stays out of
// the tests.
func defaultsConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(sharedDir(t, 0), "fanotify.json")
	if err := os.WriteFile(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func queryCommandJSON(t *testing.T, sql string) []map[string]string {
	t.Helper()
	out, errOut, code := queryCommand(t, "--json", sql)
	if code != 0 {
		t.Fatalf("%s: exit %d: %s", sql, code, errOut)
	}
	var rows []map[string]string
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%s: %v in %q", sql, err, out)
	}
	return rows
}

// canonicalRows renders rows over cols as sorted JSON lines; an absent key and
// NULL both print as "" in osqueryi's output. Columns for which volatile
// holds are left out of that row.
func canonicalRows(t *testing.T, rows []map[string]string, cols []string, volatile func(row map[string]string, col string) bool) []string {
	t.Helper()
	var lines []string
	for _, r := range rows {
		full := make(map[string]string, len(cols))
		for _, c := range cols {
			if !volatile(r, c) {
				full[c] = r[c]
			}
		}
		data, err := json.Marshal(full)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(data))
	}
	slices.Sort(lines)
	return lines
}

// query --json over the embedded engine returns what osqueryd would get from
// the extension's generate, once SQLite has applied the WHERE clause.
func TestQueryMatchesGenerate(t *testing.T) {
	ns := newHostileNamespace(t)
	m, _, _ := launch(t, false)

	var cols []string
	for _, tbl := range productTables(t) {
		if tbl.Name == "mount_points" {
			for _, c := range tbl.Columns {
				cols = append(cols, c.Name)
			}
		}
	}
	if len(cols) == 0 {
		t.Fatal("no mount_points table")
	}

	generated, err := m.Generate("mount_points", equalsContext(t, "mnt_ns", ns.mntNS))
	if err != nil {
		t.Fatal(err)
	}
	generated = slices.DeleteFunc(generated, func(r map[string]string) bool { return r["mnt_ns"] != ns.mntNS })
	if len(generated) < len(ns.names)+1 {
		t.Fatalf("generate returned %d rows of namespace %s, want at least %d", len(generated), ns.mntNS, len(ns.names)+1)
	}

	// The namespace copied the host's mounts at its creation; their mark
	// counts follow what other processes watch on the shared filesystems.
	// Only the test's own tmpfs keeps its counts still.
	volatile := func(r map[string]string, col string) bool {
		usage := strings.HasPrefix(col, "fanotify_") || strings.HasPrefix(col, "inotify_")
		return usage && r["path"] != ns.dir && !strings.HasPrefix(r["path"], ns.dir+"/")
	}
	got := queryCommandJSON(t, "SELECT "+strings.Join(cols, ", ")+" FROM mount_points WHERE mnt_ns = "+ns.mntNS)
	if g, w := canonicalRows(t, got, cols, volatile), canonicalRows(t, generated, cols, volatile); !slices.Equal(g, w) {
		t.Errorf("query --json:\n%s\ngenerate:\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}

	count := queryCommandJSON(t, "SELECT COUNT(*) AS n FROM mount_points WHERE mnt_ns = "+ns.mntNS)
	if want := []map[string]string{{"n": strconv.Itoa(len(generated))}}; !slices.EqualFunc(count, want, maps.Equal) {
		t.Errorf("COUNT(*) = %v, want %v", count, want)
	}
}

func TestQueryCountAllMounts(t *testing.T) {
	ns := newHostileNamespace(t)
	rows := queryCommandJSON(t, "SELECT COUNT(*) AS n FROM mount_points")
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("got %v, want one object with n", rows)
	}
	n, err := strconv.Atoi(rows[0]["n"])
	// Every namespace counts, ours included, and the host's has mounts too.
	if err != nil || n <= len(ns.names)+1 {
		t.Errorf("n = %q, want more than the %d mounts of our namespace", rows[0]["n"], len(ns.names)+1)
	}
}

func TestQueryPrintsTable(t *testing.T) {
	ns := newHostileNamespace(t)
	out, errOut, code := queryCommand(t, "SELECT mnt_ns, COUNT(*) AS mounts FROM mount_points WHERE mnt_ns = "+ns.mntNS+" GROUP BY mnt_ns")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 || lines[0] != lines[2] || lines[0] != lines[4] || !strings.HasPrefix(lines[0], "+-") {
		t.Fatalf("not an osqueryi table:\n%s", out)
	}
	// The namespace is private to the test: its mountinfo is stable.
	mountinfo, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", ns.pid))
	if err != nil {
		t.Fatal(err)
	}
	mounts := strconv.Itoa(strings.Count(string(mountinfo), "\n"))
	if fields := strings.Fields(strings.ReplaceAll(lines[3], "|", " ")); !slices.Equal(fields, []string{ns.mntNS, mounts}) {
		t.Errorf("row %q, want namespace %s with %s mounts", lines[3], ns.mntNS, mounts)
	}
}

func TestQueryErrors(t *testing.T) {
	for sql, msg := range map[string]string{
		"SELEC 1":                         `near "SELEC": syntax error`,
		"SELECT * FROM nowhere":           "no such table: nowhere",
		"SELECT nope FROM mount_points":   "no such column: nope",
		"DELETE FROM mount_points":        "attempt to write a readonly database",
		"SELECT * FROM mount_points, (":   "incomplete input",
		"SELECT 1; SELECT * FROM nowhere": "no such table: nowhere",
	} {
		out, errOut, code := queryCommand(t, sql)
		if code != 1 || errOut != "Error: "+msg+"\n" || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", sql, code, out, errOut, msg)
		}
	}
	if _, errOut, code := queryCommand(t); code != 1 || !strings.Contains(errOut, "usage") {
		t.Errorf("no SQL: exit %d, stderr %q", code, errOut)
	}
}

// Odd input never crashes the binary: it answers or exits 1 with a message.
func TestQueryOddInput(t *testing.T) {
	for _, sql := range []string{
		"", ";", "   ", "SELECT", "SELECT '\xff'",
		"SELECT * FROM mount_points WHERE mnt_ns = x'00ff' OR pid = -1e400",
		"SELECT path FROM mount_points WHERE path MATCH 'x'",
		"SELECT path FROM mount_points WHERE mnt_ns IN (SELECT mnt_ns FROM mount_points) LIMIT -1 OFFSET 99999999999999999999",
		"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3) SELECT * FROM c",
		"ATTACH '/nonexistent/dir/db' AS x",
	} {
		_, errOut, code := queryCommand(t, sql)
		if (code != 0 && code != 1) || strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine") {
			t.Errorf("%q: exit %d, stderr %q", sql, code, errOut)
		}
		if code == 1 && !strings.HasPrefix(errOut, "Error: ") {
			t.Errorf("%q: exit 1 without an error message: %q", sql, errOut)
		}
	}
}
