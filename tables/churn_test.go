package tables

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// snapshotTables are the tables that read /proc on every scan.
var snapshotTables = []string{"mount_points", "fanotify_groups", "fanotify_marks", "inotify_instances", "inotify_watches", "fanotify_limits"}

// churnScans is how many scans TestChurn runs: FANOTIFY_CHURN_SCANS, 100
// by default (make stress runs 1000).
func churnScans(t *testing.T) int {
	s := os.Getenv("FANOTIFY_CHURN_SCANS")
	if s == "" {
		return 100
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("FANOTIFY_CHURN_SCANS=%q: want a positive number", s)
	}
	return n
}

// churnScript starts processes as fast as a shell can: each `tail -f`
// holds the inherited fanotify group (fd 3) and inotify instance (fd 4)
// from birth and soon creates an inotify instance and watch of its own. The
// previous one is killed and reaped as the next is born. It prints b per
// birth and d per death.
const churnScript = `prev=
while :; do
	tail -f "$0" >/dev/null 2>&1 & p=$!
	echo b
	if [ -n "$prev" ]; then kill -KILL "$prev"; wait "$prev"; echo d; fi
	prev=$p
done`

// churner runs shell loops of churnScript, each in its own process group
// so that halt kills the loop and its last child together.
type churner struct {
	loops        []*exec.Cmd
	born, reaped atomic.Int64
	counting     sync.WaitGroup
}

func startChurn(t *testing.T, loops int) *churner {
	t.Helper()
	file := filepath.Join(t.TempDir(), "watched")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := &churner{}
	for range loops {
		fan := fanotifytest.Fanotify(t, 0)
		fanotifytest.Mark(t, fan, 0, unix.FAN_MODIFY, file)
		in := fanotifytest.Inotify(t, file)
		cmd := exec.Command("sh", "-c", churnScript, file)
		cmd.ExtraFiles = []*os.File{os.NewFile(uintptr(fan), "fanotify"), os.NewFile(uintptr(in), "inotify")}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		err = cmd.Start()
		for _, f := range cmd.ExtraFiles {
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		c.loops = append(c.loops, cmd)
		c.counting.Go(func() { c.count(out) })
	}
	t.Cleanup(c.kill)
	return c
}

// count tallies the loop's b and d lines until its output closes.
func (c *churner) count(out io.Reader) {
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		switch lines.Text() {
		case "b":
			c.born.Add(1)
		case "d":
			c.reaped.Add(1)
		}
	}
}

// kill ends every loop with its process group; safe to call twice.
func (c *churner) kill() {
	for _, cmd := range c.loops {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	c.counting.Wait()
	for _, cmd := range c.loops {
		cmd.Wait()
	}
	c.loops = nil
}

// halt stops the churn and returns births and deaths per second.
func (c *churner) halt(elapsed time.Duration) (born, reaped float64) {
	c.kill()
	return float64(c.born.Load()) / elapsed.Seconds(), float64(c.reaped.Load()) / elapsed.Seconds()
}

// openFDs counts this process's open fds.
func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// Every snapshot table scans without error while processes holding inotify
// and fanotify fds are born and die, whether its snapshot kept the marks or
// not, builds the rows it announced, and leaves no goroutine or fd behind.
// Each scan takes a fresh walk of /proc (a new Env), as queries more than
// a second apart do.
func TestChurn(t *testing.T) {
	scans := churnScans(t)
	fdsBefore := openFDs(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	c := startChurn(t, 2)
	begin := time.Now()
	errs, rows, churned := 0, 0, 0
	for i := range scans {
		env := &Env{Proc: procfs.NewFS(procfs.DefaultRoot), Config: config.Default(), Log: quietLog}
		// Every other scan keeps no mark, so that tables read the marks of
		// the groups they show again, from fds that may be gone by then.
		keep := fanotify.KeptMarks
		if i%2 == 1 {
			keep = 0
		}
		env.Usage = fanotify.NewScanner(env.Proc, 10*time.Second, keep, quietLog)
		r := NewRunner(All(env), time.Minute, len(snapshotTables), quietLog)
		for _, name := range snapshotTables {
			// As osqueryd gets them: the per-mark tables' rows are built
			// after their walk, while holders go on dying.
			stream, err := r.Stream(context.Background(), name, NewQueryContext(nil, nil))
			if err != nil {
				errs++
				t.Errorf("scan %d: %s: %v", i, name, err)
			}
			tbl, _ := r.Table(name)
			got := tbl.Named(stream.All, NewQueryContext(nil, nil))
			if len(got) != stream.Len {
				errs++
				t.Errorf("scan %d: %s: %d rows announced, %d built", i, name, stream.Len, len(got))
			}
			rows += len(got)
			for _, row := range got {
				if row["process"] == "tail" {
					churned++
				}
			}
		}
		env.Close()
		if errs > 10 {
			break
		}
	}
	elapsed := time.Since(begin)
	born, reaped := c.halt(elapsed)
	t.Logf("%d scans of %d tables (%d rows, %d of churned processes) in %s, while %.0f processes/s were born and %.0f/s died",
		scans, len(snapshotTables), rows, churned, elapsed.Round(time.Millisecond), born, reaped)
	if churned == 0 {
		t.Error("no scan saw a churned process: the scans did not overlap the churn")
	}
	if after := openFDs(t); after != fdsBefore {
		t.Errorf("%d open fds before the scans, %d after", fdsBefore, after)
	}
}
