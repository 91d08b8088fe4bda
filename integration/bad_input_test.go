package integration_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
)

// constraintContext is a context JSON with one list per column.
func constraintContext(t *testing.T, lists map[string][]map[string]any) string {
	t.Helper()
	var cs []map[string]any
	for _, col := range slices.Sorted(func(yield func(string) bool) {
		for c := range lists {
			if !yield(c) {
				return
			}
		}
	}) {
		cs = append(cs, map[string]any{"name": col, "affinity": "TEXT", "list": lists[col]})
	}
	data, err := json.Marshal(map[string]any{"constraints": cs})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// opCodes are every operator code osqueryd may send (SQLite's 1..74 and
// 150, osquery's own) and codes nobody sends.
func opCodes() []int {
	codes := []int{-1, 0, 150, 151, 1000, 1 << 31}
	for op := 1; op <= 80; op++ {
		codes = append(codes, op)
	}
	return codes
}

// oddValues are values no column expects.
var oddValues = []string{"abc", "", "-", "1e999", "-9223372036854775809", "18446744073709551616", "0x10", " 1", "1.5",
	"NaN", "\x00", "\xff\xfe", strings.Repeat("x", 1<<20)}

// ownRows keeps the rows of the test's own tmpfs and its bind mounts, by
// mount id.
func ownRows(rows []map[string]string, ns hostileNamespace) map[string]map[string]string {
	own := map[string]map[string]string{}
	for _, r := range rows {
		if r["mnt_ns"] == ns.mntNS && (r["path"] == ns.dir || strings.HasPrefix(r["path"], ns.dir+"/")) {
			own[r["mount_id"]] = r
		}
	}
	return own
}

// requireServing checks that the extension still answers a ping and a
// plain generate.
func requireServing(t *testing.T, m *standin.Manager, p *standin.Process) {
	t.Helper()
	if dropped := m.Sweep(); len(dropped) != 0 {
		t.Fatalf("the extension no longer answers pings\nstderr:\n%s", p.Stderr())
	}
	if _, err := m.Generate("mount_points", ""); err != nil {
		t.Fatalf("plain generate afterwards: %v\nstderr:\n%s", err, p.Stderr())
	}
}

// callOK sends one generate: a failure status is an answer, a transport
// error or a dead extension is not.
func callOK(t *testing.T, m *standin.Manager, table, ctx string) ([]map[string]string, bool) {
	t.Helper()
	rows, err := m.Generate(table, ctx)
	var status *standin.StatusError
	if errors.As(err, &status) {
		if status.Message == "" {
			t.Errorf("%s: error status without a message", table)
		}
		return nil, false
	}
	if err != nil {
		t.Fatalf("%s: %v (context of %d bytes)", table, err, len(ctx))
	}
	return rows, true
}

// Every operator code on every column, with the value of one of the test's
// rows: a row that satisfies the constraint must come back, and operators
// a table does not use must narrow nothing.
func TestEveryOperatorCode(t *testing.T) {
	ns := newHostileNamespace(t)
	m, p, _ := launch(t, false)
	inNS := map[string]any{"op": 2, "expr": ns.mntNS}
	baseline := ownRows(generate(t, m, "mount_points", constraintContext(t, map[string][]map[string]any{"mnt_ns": {inNS}})), ns)
	var target map[string]string
	for _, r := range baseline {
		if r["path"] == ns.dir {
			target = r
		}
	}
	if target == nil {
		t.Fatalf("no row for %s", ns.dir)
	}
	// Operators the target row satisfies when compared with its own value.
	satisfied := map[int]bool{1: true, 2: true, 3: true, 8: true, 32: true, 65: true, 66: true, 70: true, 72: true}
	// Operators a table may use to narrow; any other must narrow nothing.
	narrowing := map[int]bool{1: true, 2: true, 3: true, 4: true, 8: true, 16: true, 32: true, 65: true, 66: true, 68: true, 69: true, 70: true, 71: true, 72: true}
	for col, value := range target {
		if col == "mnt_ns" {
			continue
		}
		for _, op := range opCodes() {
			ctx := constraintContext(t, map[string][]map[string]any{
				"mnt_ns": {inNS},
				col:      {{"op": op, "expr": value}},
			})
			rows, ok := callOK(t, m, "mount_points", ctx)
			if !ok {
				continue
			}
			got := ownRows(rows, ns)
			if satisfied[op] && got[target["mount_id"]] == nil {
				t.Errorf("%s op %d %q: the row of %s is missing", col, op, value, ns.dir)
			}
			if !narrowing[op] && len(got) < len(baseline) {
				t.Errorf("%s op %d: %d of %d rows: an unknown operator narrowed", col, op, len(got), len(baseline))
			}
		}
	}
	requireServing(t, m, p)
}

// Odd values and every operator on every column of every table, all in one
// context: an answer (rows or an error status) each time, and the extension
// keeps serving.
func TestOddConstraintsOnEveryTable(t *testing.T) {
	m, p, _ := launch(t, false)
	for _, tbl := range productTables(t) {
		lists := map[string][]map[string]any{}
		small := oddValues[:len(oddValues)-1]
		for _, c := range tbl.Columns {
			for i, op := range opCodes() {
				lists[c.Name] = append(lists[c.Name], map[string]any{"op": op, "expr": small[i%len(small)]})
			}
		}
		callOK(t, m, tbl.Name, constraintContext(t, lists))
		for _, v := range oddValues {
			ctx := map[string][]map[string]any{}
			for _, c := range tbl.Columns {
				ctx[c.Name] = []map[string]any{{"op": 2, "expr": v}}
			}
			callOK(t, m, tbl.Name, constraintContext(t, ctx))
		}
	}
	requireServing(t, m, p)
}

// A request over thrift's 100 MB message limit is refused by closing the
// connection; the extension keeps serving.
func TestOversizedRequest(t *testing.T) {
	m := standin.New(t)
	// Building and sending 101 MB can stall this process, the stand-in
	// osqueryd, past the 3 s the extension waits for its pings on a loaded
	// machine: the extension would then rightly take osqueryd for gone.
	m.Timeout = 30
	p, _ := launchUnder(t, m, false)
	ctx := constraintContext(t, map[string][]map[string]any{"path": {{"op": 2, "expr": strings.Repeat("x", 101<<20)}}})
	if _, err := m.Generate("mount_points", ctx); err == nil {
		t.Error("a 101 MB request was answered")
	}
	requireServing(t, m, p)
}

// A 10,000-value list (osqueryd sends one for an OPTIMIZED column) still
// finds the pid in it.
func TestLongValueList(t *testing.T) {
	ns := newHostileNamespace(t)
	m, p, _ := launch(t, false)
	var list []map[string]any
	for i := range 10000 {
		list = append(list, map[string]any{"op": 2, "expr": strconv.Itoa(4000000 + i)})
	}
	list[5000]["expr"] = strconv.Itoa(ns.pid)
	rows, ok := callOK(t, m, "mount_points", constraintContext(t, map[string][]map[string]any{"pid": list}))
	if !ok {
		t.Fatal("error status for a long list")
	}
	if len(ownRows(rows, ns)) == 0 {
		t.Errorf("no rows of pid %d, which the list holds", ns.pid)
	}
	requireServing(t, m, p)
}

// Malformed context JSON gets an error status naming the problem.
func TestMalformedContexts(t *testing.T) {
	m, p, _ := launch(t, false)
	for _, ctx := range []string{
		`{`, `[]`, `null`, `"x"`, `{"constraints":{}}`, `{"constraints":[{"name":1}]}`,
		`{"constraints":[{"name":"pid","list":{}}]}`, `{"constraints":[{"name":"pid","list":[{"op":{},"expr":"1"}]}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":2,"expr":[1]}]}]}`, `{"constraints":[{"name":"pid","list":[{"op":2.5,"expr":"1"}]}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":"99999999999999999999","expr":"1"}]}]}`,
		`{"colsUsed":"pid"}`, "{\"constraints\":[{\"name\":\"\xff\",\"list\":[]}]}", strings.Repeat("[", 100000),
	} {
		_, err := m.Generate("mount_points", ctx)
		var status *standin.StatusError
		if err != nil && !errors.As(err, &status) {
			t.Fatalf("%.40q: %v", ctx, err)
		}
		if err != nil && !strings.Contains(status.Message, "context JSON") {
			t.Errorf("%.40q: status %q does not say the context is at fault", ctx, status.Message)
		}
	}
	requireServing(t, m, p)
}

// The embedded engine gives the rows a plain scan filtered afterwards gives,
// for every SQL operator, odd operands, long IN lists and 1 MB strings.
func TestQueryOperatorsMatchFilteredScan(t *testing.T) {
	ns := newHostileNamespace(t)
	big := "printf('%.*c', 1048576, 'x')"
	inList := "(WITH RECURSIVE n(x) AS (SELECT 4000000 UNION ALL SELECT x + 1 FROM n WHERE x < 4010000) SELECT x FROM n UNION SELECT " + strconv.Itoa(ns.pid) + ")"
	dir := "'" + ns.dir + "'"
	conds := []string{
		"pid = " + strconv.Itoa(ns.pid), "pid != 1", "pid < 2", "pid <= 1", "pid > 1", "pid >= 1", "pid IS 1", "pid IS NOT 1",
		"pid IS NULL", "pid IS NOT NULL", "pid BETWEEN 1 AND 99999999",
		"pid = 'abc'", "pid > 'abc'", "pid < 'abc'", "mount_id = '1e999'", "pid = 1.5", "pid = -9223372036854775808", "pid > 9223372036854775807",
		"pid IN " + inList, "pid IN (1, 'abc', NULL, 2.5, x'00')", "pid NOT IN (1, 2)",
		"path = " + dir, "path LIKE " + dir, "path GLOB " + dir, "path LIKE '%with%'", "path GLOB '*[ ]*'",
		"path = " + big, "path > " + big, "path IN (" + big + ", " + dir + ")",
		"path = 'bad\\xffbyte'", "path IS NULL", "fanotify_mount_marks = 0", "fanotify_mount_marks IS NULL",
		"pid = " + strconv.Itoa(ns.pid) + " OR path = " + dir,
	}
	// One query for all, so that one process start serves every condition.
	// Only the test's own mounts count: the others are copies of the host's,
	// which other tests mount and unmount meanwhile.
	own := fmt.Sprintf("substr(path, 1, %d) = %s", len(ns.dir), dir)
	var counts []string
	for i, cond := range conds {
		counts = append(counts, fmt.Sprintf("(SELECT COUNT(*) FROM mount_points WHERE mnt_ns = %s AND (%s) AND %s) AS direct%d, "+
			"(WITH m AS MATERIALIZED (SELECT * FROM mount_points WHERE mnt_ns = %s) SELECT COUNT(*) FROM m WHERE (%s) AND %s) AS filtered%d",
			ns.mntNS, cond, own, i, ns.mntNS, cond, own, i))
	}
	rows := queryCommandJSON(t, "SELECT "+strings.Join(counts, ", "))
	if len(rows) != 1 {
		t.Fatalf("%d rows, want 1", len(rows))
	}
	if want := strconv.Itoa(len(ns.names) + 1); rows[0]["direct0"] != want {
		t.Errorf("%s: %q rows, want the namespace's %s own mounts", conds[0], rows[0]["direct0"], want)
	}
	for i, cond := range conds {
		direct, filtered := rows[0]["direct"+strconv.Itoa(i)], rows[0]["filtered"+strconv.Itoa(i)]
		if direct != filtered || direct == "" {
			t.Errorf("%.80s: %q rows through the table's constraints, %q filtered afterwards", cond, direct, filtered)
		}
	}
	// SQLite refuses patterns over 50,000 bytes; that is an answer too.
	_, errOut, code := queryCommand(t, "SELECT COUNT(*) FROM mount_points WHERE source LIKE "+big)
	if want := "Error: LIKE or GLOB pattern too complex\n"; code != 1 || errOut != want {
		t.Errorf("1 MB LIKE pattern: exit %d, stderr %q; want exit 1 and %q", code, errOut, want)
	}
}

// Product code reads /proc and calls the kernel itself: no child processes.
func TestNoShellingOut(t *testing.T) {
	root := filepath.Join("..")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "integration" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "test/") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, banned := range []string{`"os/exec"`, "syscall.ForkExec", "syscall.Exec(", "unix.Exec(", "os.StartProcess"} {
			if strings.Contains(string(data), banned) {
				t.Errorf("%s uses %s", path, banned)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
