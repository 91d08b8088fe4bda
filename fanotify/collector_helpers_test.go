package fanotify

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
)

// helperEnv selects a helper mode when the test binary runs itself as a
// child process: "chunks DIR N", "userns DIR HOSTDIR" or "events DIR
// [mount]".
const helperEnv = "FANOTIFY_COLLECTOR_HELPER"

// TestCollectorHelperProcess is not a test: it is the body of the child
// processes the collector tests start.
func TestCollectorHelperProcess(t *testing.T) {
	args := strings.Fields(os.Getenv(helperEnv))
	if len(args) == 0 {
		return
	}
	var err error
	switch args[0] {
	case "chunks":
		n, _ := strconv.Atoi(args[2])
		err = createChunks(args[1], n)
	case "userns":
		err = usernsLimitChild(args[1], args[2])
	case "events":
		err = eventsChild(args[1], slices.Contains(args, "mount"))
	default:
		err = fmt.Errorf("unknown helper %q", args[0])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// createFiles creates and closes dir/prefix0 .. dir/prefix(n-1).
func createFiles(dir, prefix string, n int) error {
	for i := range n {
		fd, err := unix.Open(filepath.Join(dir, prefix+strconv.Itoa(i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	return nil
}

// createChunks creates n files named after each line read from stdin, and
// answers each line once its files exist: one process serves many chunks.
func createChunks(dir string, n int) error {
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		if err := createFiles(dir, lines.Text(), n); err != nil {
			return err
		}
		fmt.Println(lines.Text())
	}
	return lines.Err()
}

// chunkCreator is a helper process creating files chunk by chunk.
type chunkCreator struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startChunkCreator(t testing.TB, dir string, n int) *chunkCreator {
	t.Helper()
	cmd := helperCommand(t, nil, "chunks", dir, strconv.Itoa(n))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cc := &chunkCreator{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		cc.in.Close()
		cc.cmd.Wait()
	})
	return cc
}

// create makes the helper create its n files named prefix0, prefix1, ...
func (cc *chunkCreator) create(t testing.TB, prefix string) {
	t.Helper()
	if _, err := fmt.Fprintln(cc.in, prefix); err != nil {
		t.Fatal(err)
	}
	if !cc.out.Scan() || cc.out.Text() != prefix {
		t.Fatalf("helper did not create chunk %s: %v", prefix, cc.out.Err())
	}
}

// usernsResult is what usernsLimitChild reports, per collector started.
type usernsResult struct {
	// Auto watches a tmpfs, hostDir and another tmpfs with two marks allowed.
	Auto []WatchStatus
	// Filesystem watches hostDir with mark "filesystem" only.
	Filesystem []WatchStatus
	// NoGroup is a third collector, over max_fanotify_groups.
	NoGroup []WatchStatus
}

// usernsLimitChild runs as root of a child user and mount namespace: it
// mounts two tmpfs of its own, allows itself two fanotify marks and two
// groups, and prints what three collectors make of that.
func usernsLimitChild(dir, hostDir string) error {
	var paths []string
	for _, name := range []string{"a", "b"} {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", p, "tmpfs", 0, "size=1m"); err != nil {
			return fmt.Errorf("mount tmpfs: %w", err)
		}
		paths = append(paths, p)
	}
	for name, limit := range map[string]string{"max_fanotify_marks": "2", "max_fanotify_groups": "2"} {
		if err := os.WriteFile("/proc/sys/user/"+name, []byte(limit), 0); err != nil {
			return err
		}
	}
	var res usernsResult
	for _, run := range []struct {
		out   *[]WatchStatus
		mark  string
		paths []string
	}{
		{&res.Auto, "auto", []string{paths[0], hostDir, paths[1]}},
		{&res.Filesystem, "filesystem", []string{hostDir}},
		{&res.NoGroup, "auto", []string{hostDir}},
	} {
		cfg := collectorConfig(run.paths...)
		cfg.Mark = run.mark
		c := StartCollector(cfg, slog.Default())
		defer c.Stop()
		*run.out = c.Stats().Watches
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// eventsResult is what eventsChild reports: the event of the file it had
// created, and the events the collector could not resolve.
type eventsResult struct {
	Path, Process   string
	PID, CreatorPID int
	UID             int64
	Unresolved      uint64
}

// eventsChild watches DIR/w (with a tmpfs mounted on DIR first, if asked)
// and reports the event of DIR/w/sub/f, created by another process in a
// new directory.
func eventsChild(dir string, mount bool) error {
	if mount {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			return fmt.Errorf("mount tmpfs: %w", err)
		}
	}
	watched := filepath.Join(dir, "w")
	if err := os.Mkdir(watched, 0o755); err != nil {
		return err
	}
	c := StartCollector(collectorConfig(watched), slog.Default())
	defer c.Stop()
	file := filepath.Join(watched, "sub", "f")
	creator := exec.Command("sh", "-c", `mkdir "$1" && : > "$2"`, "sh", filepath.Dir(file), file)
	if out, err := creator.CombinedOutput(); err != nil {
		return fmt.Errorf("creating %s: %v: %s", file, err, out)
	}
	res := eventsResult{CreatorPID: creator.Process.Pid}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		res.Unresolved = c.Stats().Unresolved
		if evs := c.Events(func(e *Event) bool { return e.Path() == file }); len(evs) > 0 {
			e := &evs[0]
			res.Path, res.Process, res.PID, res.UID = e.Path(), e.Process(), int(e.PID), -1
			if uid, ok := e.EffectiveUID(); ok {
				res.UID = int64(uid)
			}
			break
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// helperCommand returns a command running this test binary as a helper.
func helperCommand(t testing.TB, wrapper []string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append(append(wrapper, self), "-test.run=^TestCollectorHelperProcess$")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(args, " "))
	cmd.Stderr = os.Stderr
	return cmd
}

// mountTmpfs mounts a fresh tmpfs, a superblock no other test touches.
func mountTmpfs(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=512m"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// ext4Dir returns a directory on ext4: the temporary directory when it is
// on ext4, else a loop-mounted image made with mkfs.ext4.
func ext4Dir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == unix.EXT4_SUPER_MAGIC {
		return dir
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("no ext4 here: the temporary directory is not on ext4 and mkfs.ext4 is missing")
	}
	img := filepath.Join(dir, "ext4.img")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil || os.Truncate(img, 64<<20) != nil {
		t.Fatalf("image: %v", err)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("loop mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	return mnt
}

func collectorConfig(paths ...string) config.Collector {
	cfg := config.Default().Collector
	cfg.Enabled = true
	cfg.Paths = paths
	return cfg
}

func startTestCollector(t testing.TB, cfg config.Collector, opts collectorOptions) *Collector {
	t.Helper()
	c := startCollector(cfg, slog.Default(), opts)
	t.Cleanup(c.Stop)
	return c
}

// run runs a command in another process and returns its pid.
func run(t testing.TB, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return cmd.Process.Pid
}

func all(*Event) bool { return true }

// waitEvents waits until the collector holds an event that match accepts
// and returns every event that matches it.
func waitEvents(t testing.TB, c *Collector, what string, match func(*Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if evs := c.Events(match); len(evs) > 0 {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event for %s; have %s", what, describe(c.Events(all)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitMask waits for the events on path caused by pid until their masks
// together hold every bit of want, and returns their union.
func waitMask(t testing.TB, c *Collector, path string, pid int, want uint64) uint64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got uint64
		for _, e := range c.Events(func(e *Event) bool { return e.Path() == path && int(e.PID) == pid }) {
			got |= e.Mask
		}
		if got&want == want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("events on %s by pid %d: mask %#x, want bits %#x; have %s", path, pid, got, want, describe(c.Events(all)))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func describe(evs []Event) string {
	var b strings.Builder
	for i := range evs {
		e := &evs[i]
		fmt.Fprintf(&b, "\n  %d %s pid=%d %q", e.ID, e.Action(), e.PID, e.Path())
	}
	return b.String()
}

// openFDs counts this process's open fds.
func openFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func watchOf(t testing.TB, s Stats, path string) WatchStatus {
	t.Helper()
	for _, w := range s.Watches {
		if w.Path == path {
			return w
		}
	}
	t.Fatalf("no watch for %s in %+v", path, s.Watches)
	return WatchStatus{}
}
