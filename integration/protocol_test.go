package integration_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
)

// sleeper is a process alone in a new mount namespace: its mounts are a
// private copy that nobody else changes while the test runs.
type sleeper struct {
	pid   int
	mntNS string
}

func startSleeper(t *testing.T) sleeper {
	t.Helper()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "120")
	if err := cmd.Start(); err != nil {
		t.Skipf("unshare: %v (needs root and util-linux)", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	own := mntNS(t, os.Getpid())
	deadline := time.Now().Add(5 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if ns := mntNS(t, pid); ns != own && string(comm) == "sleep\n" {
			return sleeper{pid: pid, mntNS: ns}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not enter a new mount namespace", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mntNS is the inode of pid's mount namespace, as mount_points shows it.
func mntNS(t *testing.T, pid int) string {
	t.Helper()
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(strings.TrimPrefix(link, "mnt:["), "]")
}

// ctxJSON builds osqueryd's context JSON for constraints on one column each.
// op is written as given, so a quoted op ("\"2\"") is the old string form.
func ctxJSON(terms ...[3]string) string {
	var cs []string
	for _, t := range terms {
		cs = append(cs, fmt.Sprintf(`{"name":%q,"list":[{"op":%s,"expr":%q}],"affinity":"BIGINT"}`, t[0], t[1], t[2]))
	}
	return `{"constraints":[` + strings.Join(cs, ",") + `],"colsUsed":["mnt_ns","pid","mount_id","path"],"colsUsedBitset":71}`
}

// mountsOf returns "mount_id path" of the rows of namespace ns.
func mountsOf(rows []map[string]string, ns string) []string {
	var keys []string
	for _, r := range rows {
		if r["mnt_ns"] == ns {
			keys = append(keys, r["mount_id"]+" "+r["path"])
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// hasAll reports whether got holds every key of want.
func hasAll(got, want []string) bool {
	for _, k := range want {
		if _, found := slices.BinarySearch(got, k); !found {
			return false
		}
	}
	return true
}

func generate(t *testing.T, m *standin.Manager, table, ctx string) []map[string]string {
	t.Helper()
	rows, err := m.Generate(table, ctx)
	if err != nil {
		t.Fatalf("generate %s %s: %v", table, ctx, err)
	}
	return rows
}

func TestGenerateWithConstraints(t *testing.T) {
	m, _, ext := launch(t, false)
	if _, ok := ext.Registry["table"]["mount_points"]; !ok {
		t.Skip("mount_points is not registered")
	}
	one, two := startSleeper(t), startSleeper(t)
	baseline := mountsOf(generate(t, m, "mount_points", ""), one.mntNS)
	if !slices.ContainsFunc(baseline, func(k string) bool { return strings.HasSuffix(k, " /") }) {
		t.Fatalf("no root mount for namespace %s in %v", one.mntNS, baseline)
	}
	p1, p2 := strconv.Itoa(one.pid), strconv.Itoa(two.pid)

	t.Run("= reaches the table", func(t *testing.T) {
		// Unconstrained, a namespace shows through its lowest pid; asked
		// for a pid, it shows through that pid.
		self := strconv.Itoa(os.Getpid())
		rows := generate(t, m, "mount_points", ctxJSON([3]string{"pid", "2", self}))
		if !slices.ContainsFunc(rows, func(r map[string]string) bool { return r["pid"] == self && r["path"] == "/" }) {
			t.Errorf("no row with pid %s and path /: the constraint did not reach the table", self)
		}
	})
	cases := []struct {
		name, ctx string
	}{
		{"=", ctxJSON([3]string{"mnt_ns", "2", one.mntNS})},
		{"= with op as a string", ctxJSON([3]string{"mnt_ns", `"2"`, one.mntNS})},
		{"!= is ignored", ctxJSON([3]string{"pid", "68", p1})},
		{"LIKE is ignored", ctxJSON([3]string{"pid", "65", p2})},
		{"= and != together", ctxJSON([3]string{"mnt_ns", "2", one.mntNS}, [3]string{"pid", "68", p1})},
		{"= on a value that is not a number", ctxJSON([3]string{"pid", "2", "abc"}, [3]string{"mnt_ns", "2", one.mntNS})},
		{"empty list", `{"constraints":[{"name":"pid","list":"","affinity":"BIGINT"}]}`},
		{"unknown column", ctxJSON([3]string{"no_such_column", "2", "1"})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mountsOf(generate(t, m, "mount_points", c.ctx), one.mntNS)
			if !hasAll(got, baseline) {
				t.Errorf("rows of namespace %s missing: got %v, want %v", one.mntNS, got, baseline)
			}
		})
	}
	t.Run("IN sends one generate per value", func(t *testing.T) {
		var mu sync.Mutex
		var union []map[string]string
		var wg sync.WaitGroup
		for _, pid := range []string{p1, p2} {
			wg.Go(func() {
				rows, err := m.Generate("mount_points", ctxJSON([3]string{"pid", "2", pid}))
				if err != nil {
					t.Errorf("pid %s: %v", pid, err)
				}
				mu.Lock()
				union = append(union, rows...)
				mu.Unlock()
			})
		}
		wg.Wait()
		for _, s := range []sleeper{one, two} {
			if len(mountsOf(union, s.mntNS)) == 0 {
				t.Errorf("no rows for pid %d's namespace %s", s.pid, s.mntNS)
			}
		}
		if !hasAll(mountsOf(union, one.mntNS), baseline) {
			t.Errorf("rows of namespace %s missing", one.mntNS)
		}
	})
}

func TestBadCallsKeepServing(t *testing.T) {
	m, _, ext := launch(t, false)
	const table = "mount_points"
	if _, ok := ext.Registry["table"][table]; !ok {
		t.Skip("mount_points is not registered")
	}
	bad := []struct {
		name string
		call func() error
		want string
	}{
		{"malformed context", func() error { _, err := m.Generate(table, `{"constraints":[`); return err }, "context JSON"},
		{"op not a number", func() error {
			_, err := m.Generate(table, ctxJSON([3]string{"pid", `"x"`, "1"}))
			return err
		}, `op "x" is not a number`},
		{"unknown table", func() error { _, err := m.Generate("no_such_table", ""); return err }, `unknown table "no_such_table"`},
		{"unknown action", func() error {
			_, err := m.CallTable(table, map[string]string{"action": "delete"})
			return err
		}, `unknown action "delete"`},
		{"unknown registry", func() error {
			resp, err := m.Call(ext.UUID, "config", table, map[string]string{"action": "genConfig"})
			if err == nil && resp.Status.Code != 0 {
				err = &standin.StatusError{Code: resp.Status.Code, Message: resp.Status.Message}
			}
			return err
		}, `unknown registry "config"`},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			err := b.call()
			var status *standin.StatusError
			if !errors.As(err, &status) || status.Code != 1 || !strings.Contains(status.Message, b.want) {
				t.Errorf("got %v, want status 1 containing %q", err, b.want)
			}
			if _, err := m.Generate(table, ""); err != nil {
				t.Errorf("generate after the bad call: %v", err)
			}
		})
	}
}

func TestConcurrentGenerates(t *testing.T) {
	m, p, ext := launch(t, false)
	if _, ok := ext.Registry["table"]["mount_points"]; !ok {
		t.Skip("mount_points is not registered")
	}
	s := startSleeper(t)
	ctx := ctxJSON([3]string{"mnt_ns", "2", s.mntNS})
	want := mountsOf(generate(t, m, "mount_points", ctx), s.mntNS)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 3 {
				rows, err := m.Generate("mount_points", ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if got := mountsOf(rows, s.mntNS); !slices.Equal(got, want) {
					t.Errorf("got %v, want %v", got, want)
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-p.Exited():
		t.Fatalf("the extension exited\nstderr:\n%s", p.Stderr())
	default:
	}
}

// A result larger than the extension's 64 KiB write buffer arrives whole.
func TestLargeResult(t *testing.T) {
	m, _, ext := launch(t, false)
	if _, ok := ext.Registry["table"]["mount_points"]; !ok {
		t.Skip("mount_points is not registered")
	}
	var sleepers []sleeper
	for range 20 {
		sleepers = append(sleepers, startSleeper(t))
	}
	rows := generate(t, m, "mount_points", "")
	size := 0
	for _, r := range rows {
		for k, v := range r {
			size += len(k) + len(v)
		}
	}
	if size < 64<<10 {
		t.Fatalf("result of %d bytes does not cross the buffer", size)
	}
	for _, s := range sleepers {
		want := mountsOf(generate(t, m, "mount_points", ctxJSON([3]string{"mnt_ns", "2", s.mntNS})), s.mntNS)
		if got := mountsOf(rows, s.mntNS); !slices.Equal(got, want) {
			t.Errorf("namespace %s: %d mounts in the large result, %d alone", s.mntNS, len(got), len(want))
		}
	}
}

// Every table answers an unconstrained generate, with only its own columns.
func TestEveryTableGenerates(t *testing.T) {
	m, _, _ := launch(t, false)
	for _, tbl := range productTables(t) {
		t.Run(tbl.Name, func(t *testing.T) {
			cols := map[string]bool{}
			for _, c := range tbl.Columns {
				if c.Options()&2 != 0 {
					t.Skipf("column %s is REQUIRED", c.Name)
				}
				cols[c.Name] = true
			}
			for _, row := range generate(t, m, tbl.Name, "") {
				for k := range row {
					if !cols[k] {
						t.Fatalf("row has column %q, which the table does not declare", k)
					}
				}
			}
		})
	}
}

// BenchmarkGenerate measures one mount_points generate as osqueryd sends
// it: a new connection, the call, the rows back through the buffer.
func BenchmarkGenerate(b *testing.B) {
	m := standin.New(b)
	p := m.Launch(b, standin.BuildBinary(b), false)
	if _, err := m.WaitRegistered("fanotify", registerTimeout); err != nil {
		b.Fatalf("%v\nstderr:\n%s", err, p.Stderr())
	}
	rows := 0
	for b.Loop() {
		got, err := m.Generate("mount_points", "")
		if err != nil {
			b.Fatal(err)
		}
		rows = len(got)
	}
	b.ReportMetric(float64(rows), "rows/op")
}
