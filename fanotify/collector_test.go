package fanotify

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// Tests here create fanotify groups, mounts and processes: never parallel.

const dirent = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVE

func TestCollectorFileAndDirectoryEvents(t *testing.T) {
	for _, fs := range []struct {
		name string
		dir  func(testing.TB) string
	}{{"tmpfs", mountTmpfs}, {"ext4", ext4Dir}} {
		for _, mode := range []string{"fid", "fd"} {
			t.Run(fs.name+"/"+mode, func(t *testing.T) {
				collectorScenario(t, fs.dir(t), mode == "fd")
			})
		}
	}
}

// collectorScenario creates, modifies, renames and deletes files and
// directories from other processes and checks path, pid and action of each.
// Without file handles (fd mode) only events carrying an fd exist.
func collectorScenario(t *testing.T, root string, fdMode bool) {
	watched := filepath.Join(root, "watched")
	skip := filepath.Join(watched, "skip")
	if err := os.MkdirAll(skip, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := collectorConfig(watched)
	cfg.ExcludePaths = []string{skip}
	c := startTestCollector(t, cfg, collectorOptions{fdMode: fdMode})
	w := watchOf(t, c.Stats(), watched)
	if w.Strategy != "filesystem" || w.Marks != 1 {
		t.Fatalf("watch %+v, want one filesystem mark", w)
	}
	if fdMode != strings.Contains(w.LostEvents, "create,delete,moved_from,moved_to") {
		t.Errorf("lost_events %q in fd mode %v", w.LostEvents, fdMode)
	}
	at := func(name string) string { return filepath.Join(watched, name) }
	fid := func(bits uint64) uint64 {
		if fdMode {
			return 0
		}
		return bits
	}

	pid := run(t, "touch", at("f"))
	waitMask(t, c, at("f"), pid, fid(unix.FAN_CREATE)|unix.FAN_CLOSE_WRITE)
	pid = run(t, "sh", "-c", "echo x >> "+at("f"))
	waitMask(t, c, at("f"), pid, unix.FAN_MODIFY|unix.FAN_CLOSE_WRITE)

	pid = run(t, "mkdir", at("d"))
	if !fdMode {
		waitMask(t, c, at("d"), pid, unix.FAN_CREATE|unix.FAN_ONDIR)
	}
	pid = run(t, "touch", at("d/x"))
	waitMask(t, c, at("d/x"), pid, unix.FAN_CLOSE_WRITE)
	pid = run(t, "mv", at("d"), at("e"))
	if !fdMode {
		waitMask(t, c, at("d"), pid, unix.FAN_MOVED_FROM|unix.FAN_ONDIR)
		waitMask(t, c, at("e"), pid, unix.FAN_MOVED_TO|unix.FAN_ONDIR)
	}
	// The renamed directory's cached path must not outlive the rename.
	pid = run(t, "touch", at("e/y"))
	waitMask(t, c, at("e/y"), pid, fid(unix.FAN_CREATE)|unix.FAN_CLOSE_WRITE)

	pid = run(t, "mv", at("f"), at("g"))
	if !fdMode {
		waitMask(t, c, at("f"), pid, unix.FAN_MOVED_FROM)
		waitMask(t, c, at("g"), pid, unix.FAN_MOVED_TO)
	}
	pid = run(t, "rm", "-r", at("g"), at("e"))
	if !fdMode {
		waitMask(t, c, at("g"), pid, unix.FAN_DELETE)
		waitMask(t, c, at("e/y"), pid, unix.FAN_DELETE)
		waitMask(t, c, at("e"), pid, unix.FAN_DELETE|unix.FAN_ONDIR)
	}

	// Excluded and unwatched paths, then a sentinel: events are read in
	// order, so once the sentinel is in, the others would be too.
	run(t, "touch", filepath.Join(skip, "x"), filepath.Join(root, "outside"))
	pid = run(t, "touch", at("sentinel"))
	waitMask(t, c, at("sentinel"), pid, unix.FAN_CLOSE_WRITE)

	for _, e := range c.Events(all) {
		if !under(e.Path(), watched) || under(e.Path(), skip) {
			t.Errorf("event outside the watched subtree: %s %q", e.Action(), e.Path())
		}
		if e.WatchPath() != watched {
			t.Errorf("event %q: watch_path %q, want %q", e.Path(), e.WatchPath(), watched)
		}
		if uid, ok := e.EffectiveUID(); ok && uid != uint32(os.Geteuid()) {
			t.Errorf("event %q: uid %d, want %d", e.Path(), uid, os.Geteuid())
		}
		if fdMode && e.Mask&dirent != 0 {
			t.Errorf("fd mode reported %s", e.Action())
		}
	}
}

// Two paths on one filesystem reached through different mounts (a bind
// mount of one directory, the filesystem's own mount of another): each
// path's events read back through its own mount, whichever is configured
// first.
func TestCollectorWatchesThroughBindMounts(t *testing.T) {
	root, bind := tmpfsWithABindMount(t)
	b := filepath.Join(root, "B")
	for i, paths := range [][]string{{bind, b}, {b, bind}} {
		c := startTestCollector(t, collectorConfig(paths...), collectorOptions{})
		for _, dir := range paths {
			file := filepath.Join(dir, "f"+strconv.Itoa(i))
			waitMask(t, c, file, run(t, "touch", file), unix.FAN_CREATE)
		}
		c.Stop()
	}
}

// A handle of a directory outside a watched bind mount's root reads back
// through that mount as "/": its events are outside every watch, not on
// paths below "/" that a watch of another filesystem may take.
func TestCollectorDropsEventsOutsideABindMountsRoot(t *testing.T) {
	root, bind := tmpfsWithABindMount(t)
	b := filepath.Join(root, "B")
	other := filepath.Dir(root) // another filesystem's directory, a child of /
	for filepath.Dir(other) != "/" {
		other = filepath.Dir(other)
	}
	c := startTestCollector(t, collectorConfig(bind, other), collectorOptions{})
	outside := run(t, "touch", filepath.Join(b, filepath.Base(other)))
	sentinel := filepath.Join(bind, "sentinel")
	waitMask(t, c, sentinel, run(t, "touch", sentinel), unix.FAN_CREATE)
	if evs := c.Events(func(e *Event) bool { return int(e.PID) == outside }); len(evs) > 0 {
		t.Errorf("events of %s, outside every watch: %s", filepath.Join(b, filepath.Base(other)), describe(evs))
	}
}

// tmpfsWithABindMount mounts a tmpfs at root with directories A and B, and
// A again at bind, elsewhere.
func tmpfsWithABindMount(t *testing.T) (root, bind string) {
	root = mountTmpfs(t)
	a := filepath.Join(root, "A")
	bind = filepath.Join(t.TempDir(), "bindA")
	for _, d := range []string{a, filepath.Join(root, "B"), bind} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount(a, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })
	return root, bind
}

// Decoding a directory's handle without CAP_DAC_READ_SEARCH in the initial
// user namespace takes O_DIRECTORY (Linux 6.10+): root of a user
// namespace resolves the events of a tmpfs mounted in it.
func TestCollectorResolvesEventsInAUserNamespace(t *testing.T) {
	res := eventsHelper(t, []string{"unshare", "--user", "--map-root-user", "--mount"}, "mount")
	if res.Unresolved != 0 || res.Path == "" {
		t.Errorf("event of a new file: %+v, want it resolved", res)
	}
}

// In a child pid namespace that kept the host's /proc, an event's pid
// (this namespace's) names another process there: the process is left
// unknown rather than misnamed.
func TestCollectorLeavesProcessesUnknownWithTheHostsProc(t *testing.T) {
	res := eventsHelper(t, []string{"unshare", "--pid", "--fork", "--mount"}, "mount")
	if res.Path == "" || res.PID != res.CreatorPID || res.Process != "" || res.UID != -1 {
		t.Errorf("event of a new file: %+v, want pid %d with process and uid unknown", res, res.CreatorPID)
	}
}

// eventsHelper runs eventsChild in wrapper, on a directory of its own.
func eventsHelper(t *testing.T, wrapper []string, args ...string) eventsResult {
	t.Helper()
	out, err := helperCommand(t, wrapper, append([]string{"events", t.TempDir()}, args...)...).Output()
	if err != nil {
		t.Fatalf("%v: %v", wrapper, err)
	}
	var res eventsResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("%v: output %q: %v", wrapper, out, err)
	}
	return res
}

func TestCollectorShowsInvalidUTF8AsEscapes(t *testing.T) {
	root := mountTmpfs(t)
	c := startTestCollector(t, collectorConfig(root), collectorOptions{})
	pid := run(t, "touch", filepath.Join(root, "caf\xe9"))
	waitMask(t, c, filepath.Join(root, `caf\xe9`), pid, unix.FAN_CREATE)
}

func TestCollectorExcludesItsOwnEventsAndRecoversFromOverflow(t *testing.T) {
	root := mountTmpfs(t)
	gate := make(chan struct{})
	c := startTestCollector(t, collectorConfig(root), collectorOptions{beforeRead: func() { <-gate }})

	// Held back, the reader lets the kernel queue (max_queued_events,
	// 16384 by default) overflow with this process's own events.
	limit := readSysctl(t, "/proc/sys/fs/fanotify/max_queued_events")
	if err := createFiles(root, "burst", int(limit)+1000); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitEvents(t, c, "overflow", (*Event).Overflow)

	pid := run(t, "touch", filepath.Join(root, "after"))
	waitMask(t, c, filepath.Join(root, "after"), pid, unix.FAN_CREATE|unix.FAN_CLOSE_WRITE)

	s := c.Stats()
	if s.Overflows != 1 {
		t.Errorf("overflows %d, want 1", s.Overflows)
	}
	for _, e := range c.Events(all) {
		switch {
		case e.Overflow() && (e.PID != 0 || e.Path() != "" || e.Action() != "OVERFLOW"):
			t.Errorf("overflow row %+v: want pid 0, no path, action OVERFLOW", e)
		case int(e.PID) == os.Getpid():
			t.Errorf("the collector recorded its own event %s %q", e.Action(), e.Path())
		}
	}
}

// Events queued in a directory deleted before they are read have no path
// left: they are counted, not reported under a wrong path.
func TestCollectorCountsEventsItCannotResolve(t *testing.T) {
	root := mountTmpfs(t)
	gate := make(chan struct{})
	c := startTestCollector(t, collectorConfig(root), collectorOptions{beforeRead: func() { <-gate }})
	d := filepath.Join(root, "d")
	run(t, "sh", "-c", "mkdir "+d+" && touch "+d+"/f && rm -r "+d)
	close(gate)
	pid := run(t, "mkdir", d)
	waitMask(t, c, d, pid, unix.FAN_CREATE|unix.FAN_ONDIR)

	if s := c.Stats(); s.Unresolved == 0 {
		t.Errorf("unresolved 0; events %s", describe(c.Events(all)))
	}
	for _, e := range c.Events(all) {
		if e.Path() != d {
			t.Errorf("event %s on %q: only %s resolves", e.Action(), e.Path(), d)
		}
	}
}

// A process that exits before its last events are read keeps the name it
// had when its earlier events were read.
func TestCollectorNamesProcessesThatExited(t *testing.T) {
	root := mountTmpfs(t)
	var holding atomic.Bool
	parked, resume := make(chan struct{}), make(chan struct{})
	c := startTestCollector(t, collectorConfig(root), collectorOptions{beforeRead: func() {
		if holding.Load() {
			parked <- struct{}{}
			<-resume
		}
	}})
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	sh := exec.Command("sh", "-c", "echo x > "+a+"; read line; echo y > "+b)
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	waitMask(t, c, a, sh.Process.Pid, unix.FAN_CLOSE_WRITE)

	// Park the reader before its next read (an event of this process makes
	// sure there is one), let sh write b and exit, then let the reader go.
	holding.Store(true)
	if err := createFiles(root, "wake", 1); err != nil {
		t.Fatal(err)
	}
	<-parked
	stdin.Close()
	if err := sh.Wait(); err != nil {
		t.Fatal(err)
	}
	holding.Store(false)
	resume <- struct{}{}
	waitMask(t, c, b, sh.Process.Pid, unix.FAN_CLOSE_WRITE)
	for _, e := range c.Events(func(e *Event) bool { return int(e.PID) == sh.Process.Pid }) {
		if e.Process() != "sh" {
			t.Errorf("event %s on %q: process %q, want sh", e.Action(), e.Path(), e.Process())
		}
	}
}

func TestCollectorKeepsFDCountAndMemoryOver100kEvents(t *testing.T) {
	const chunks, perChunk = 20, 5000
	for _, mode := range []string{"fd", "fid"} {
		t.Run(mode, func(t *testing.T) {
			root := mountTmpfs(t)
			cfg := collectorConfig(root)
			cfg.BufferMax = chunks * perChunk
			creator := startChunkCreator(t, root, perChunk)
			before := openFDs(t)
			c := startCollector(cfg, slog.Default(), collectorOptions{fdMode: mode == "fd"})
			running := openFDs(t)

			for i := range chunks {
				prefix := "c" + strconv.Itoa(i) + "-"
				creator.create(t, prefix)
				// Paced per chunk (up to 2 events per file) so the kernel
				// queue of 16384 events never overflows.
				waitNewest(t, c, filepath.Join(root, prefix+strconv.Itoa(perChunk-1)))
			}
			s := c.Stats()
			if s.Overflows != 0 || s.EventsTotal < chunks*perChunk {
				t.Fatalf("events_total %d, overflows %d: want at least %d events read", s.EventsTotal, s.Overflows, chunks*perChunk)
			}
			if got := openFDs(t); got != running {
				t.Errorf("open fds %d after %d events, %d before them", got, s.EventsTotal, running)
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			t.Logf("%d events buffered: heap in use %.1f MiB, %s", s.Buffered, float64(ms.HeapInuse)/(1<<20), vmRSS(t))
			if ms.HeapInuse > 64<<20 {
				t.Errorf("heap in use %d MiB with %d buffered events, want at most 64", ms.HeapInuse>>20, s.Buffered)
			}
			c.Stop()
			if got := openFDs(t); got != before {
				t.Errorf("open fds %d after Stop, %d before Start", got, before)
			}
		})
	}
}

// waitNewest waits until the newest buffered event is on path: cheaper than
// scanning a full buffer.
func waitNewest(t *testing.T, c *Collector, path string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for newestPath(c) != path {
		if time.Now().After(deadline) {
			t.Fatalf("newest event on %q, want %q (stats %+v)", newestPath(c), path, c.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func vmRSS(t *testing.T) string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "VmRSS:") {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return "VmRSS unknown"
}

func TestCollectorStopsCleanly(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	root := mountTmpfs(t)
	before := openFDs(t)
	c := startCollector(collectorConfig(root), slog.Default(), collectorOptions{})
	pid := run(t, "touch", filepath.Join(root, "f"))
	waitMask(t, c, filepath.Join(root, "f"), pid, unix.FAN_CLOSE_WRITE)
	c.Stop()
	c.Stop()
	goleak.VerifyNone(t, opt)
	if got := openFDs(t); got != before {
		t.Errorf("open fds %d after Stop, %d before Start", got, before)
	}
}

func TestCollectorUserNamespaceLimitsAndFallbacks(t *testing.T) {
	if _, err := os.Stat("/proc/sys/user/max_fanotify_marks"); err != nil {
		t.Skipf("no per-namespace fanotify limits: %v", err)
	}
	hostDir := t.TempDir()
	cmd := helperCommand(t, []string{"unshare", "-U", "-r", "-m"}, "userns", t.TempDir(), hostDir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child in a user namespace: %v", err)
	}
	var res usernsResult
	if err := json.Unmarshal(out, &res); err != nil || len(res.Auto) != 3 || len(res.Filesystem) != 1 || len(res.NoGroup) != 1 {
		t.Fatalf("child output %q: %v", out, err)
	}
	ownTmpfs, host, overLimit := res.Auto[0], res.Auto[1], res.Auto[2]
	if ownTmpfs.Status != StatusActive || ownTmpfs.Strategy != "filesystem" || ownTmpfs.Marks != 1 {
		t.Errorf("tmpfs mounted in the namespace: %+v, want an active filesystem mark", ownTmpfs)
	}
	// Not mounted in the namespace: no filesystem mark without
	// CAP_SYS_ADMIN in the initial namespace; the fallback says what it loses.
	if host.Status != StatusDegraded || host.Strategy == "filesystem" || host.Strategy == "" ||
		!strings.Contains(host.Error, "filesystem mark: EPERM") || host.LostEvents == "" || host.Marks != 1 {
		t.Errorf("filesystem of the parent namespace: %+v, want a degraded fallback", host)
	}
	if overLimit.Status != StatusDegraded || overLimit.Marks != 0 ||
		overLimit.Error != "fanotify_mark: ENOSPC (max_fanotify_marks=2)" {
		t.Errorf("third mark: %+v, want degraded with ENOSPC (max_fanotify_marks=2)", overLimit)
	}
	// A strategy other than auto never falls back.
	if w := res.Filesystem[0]; w.Status != StatusFailed || w.Strategy != "" || w.Error != "filesystem mark: EPERM" {
		t.Errorf("mark filesystem where it is refused: %+v, want failed", w)
	}
	if w := res.NoGroup[0]; w.Status != StatusFailed || w.Error != "fanotify_init: EMFILE (max_fanotify_groups=2) or RLIMIT_NOFILE" {
		t.Errorf("third group: %+v, want failed with EMFILE (max_fanotify_groups=2)", w)
	}
}

func TestCollectorBufferMaxDropsOldest(t *testing.T) {
	root := mountTmpfs(t)
	cfg := collectorConfig(root)
	cfg.Events = []string{"create"}
	cfg.BufferMax = 3
	c := startTestCollector(t, cfg, collectorOptions{})
	var files []string
	for i := range 5 {
		files = append(files, filepath.Join(root, "f"+strconv.Itoa(i)))
	}
	pid := run(t, "touch", files...)
	waitMask(t, c, files[4], pid, unix.FAN_CREATE)

	evs := c.Events(all)
	if len(evs) != 3 {
		t.Fatalf("buffered %s, want the newest 3", describe(evs))
	}
	for i, e := range evs {
		if e.Path() != files[i+2] || e.ID != uint64(i+3) {
			t.Errorf("event %d: id %d %q, want id %d %q", i, e.ID, e.Path(), i+3, files[i+2])
		}
	}
	if s := c.Stats(); s.Dropped != 2 || s.Buffered != 3 || s.EventsTotal != 5 || s.BufferMax != 3 {
		t.Errorf("stats %+v, want 5 events, 2 dropped, 3 buffered of 3", s)
	}
}

func TestCollectorSurvivesAnUnvalidatedConfig(t *testing.T) {
	root := mountTmpfs(t)
	cfg := collectorConfig(root)
	cfg.BufferMax = 0
	c := startTestCollector(t, cfg, collectorOptions{})
	f := filepath.Join(root, "f")
	waitMask(t, c, f, run(t, "touch", f), unix.FAN_CLOSE_WRITE)
}

func TestCollectorExpiresOldEventsAtQueryTime(t *testing.T) {
	root := mountTmpfs(t)
	cfg := collectorConfig(root)
	cfg.ExpiryS = 1
	c := startTestCollector(t, cfg, collectorOptions{})
	old := filepath.Join(root, "old")
	waitMask(t, c, old, run(t, "touch", old), unix.FAN_CREATE)
	time.Sleep(1100 * time.Millisecond)
	fresh := filepath.Join(root, "fresh")
	waitMask(t, c, fresh, run(t, "touch", fresh), unix.FAN_CREATE)

	for _, e := range c.Events(all) {
		if e.Path() != fresh {
			t.Errorf("event %s %q older than expiry_s still returned", e.Action(), e.Path())
		}
	}
	if s := c.Stats(); s.Buffered != len(c.Events(all)) {
		t.Errorf("buffered %d: expired events still held", s.Buffered)
	}
}

// The group must be notification-class as the kernel reports it, and two
// paths on one filesystem must share one superblock mark.
func TestCollectorGroupIsNotificationClassWithOneMarkPerSuperblock(t *testing.T) {
	for _, mode := range []string{"fid", "fd"} {
		t.Run(mode, func(t *testing.T) {
			root := mountTmpfs(t)
			a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
			for _, d := range []string{a, b} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			c := startTestCollector(t, collectorConfig(a, b), collectorOptions{fdMode: mode == "fd"})
			info := groupFdinfo(t, c)
			if GroupClass(info.GroupFlags) != ClassNotif {
				t.Errorf("group flags %#x: class %s, want notif", info.GroupFlags, GroupClass(info.GroupFlags))
			}
			fid := uint32(unix.FAN_REPORT_FID | unix.FAN_REPORT_DFID_NAME)
			if wantFID := mode == "fid"; (info.GroupFlags&fid == fid) != wantFID {
				t.Errorf("group flags %#x, FID reporting wanted: %v", info.GroupFlags, wantFID)
			}
			if got := c.Stats().GroupFlags; got != GroupFlagNames(info.GroupFlags) {
				t.Errorf("group_flags_names %q, fdinfo says %q", got, GroupFlagNames(info.GroupFlags))
			}
			if info.MarkCount != 1 || slices.Collect(info.All())[0].Kind != procfs.MarkFilesystem {
				t.Errorf("marks %+v, want one filesystem mark", slices.Collect(info.All()))
			}
			s := c.Stats()
			if wa, wb := watchOf(t, s, a), watchOf(t, s, b); wa.Marks != 1 || wb.Marks != 0 || wb.Strategy != "filesystem" {
				t.Errorf("watches %+v %+v: want the second to share the first's mark", wa, wb)
			}
		})
	}
}

func groupFdinfo(t *testing.T, c *Collector) procfs.Fdinfo {
	t.Helper()
	data, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(c.group))
	if err != nil {
		t.Fatal(err)
	}
	info, err := procfs.ParseFdinfo(data)
	if err != nil || !info.HasGroup {
		t.Fatalf("fdinfo %q: %v", data, err)
	}
	return info
}

func TestCollectorMountMarkLosesDirectoryEntryEvents(t *testing.T) {
	root := mountTmpfs(t)
	cfg := collectorConfig(root)
	cfg.Mark = "mount"
	c := startTestCollector(t, cfg, collectorOptions{})
	w := watchOf(t, c.Stats(), root)
	if w.Strategy != "mount" || w.Status != StatusDegraded || !strings.Contains(w.LostEvents, "create,delete,moved_from,moved_to") {
		t.Fatalf("watch %+v: want a degraded mount mark losing create,delete,moved_from,moved_to", w)
	}
	if info := groupFdinfo(t, c); info.MarkCount != 1 || slices.Collect(info.All())[0].Kind != procfs.MarkMount {
		t.Errorf("marks %+v, want one mount mark", slices.Collect(info.All()))
	}
	f := filepath.Join(root, "f")
	if got := waitMask(t, c, f, run(t, "touch", f), unix.FAN_CLOSE_WRITE); got&dirent != 0 {
		t.Errorf("mount mark reported %#x", got)
	}
}

func TestCollectorInodeMarkSeesDirectChildrenOnly(t *testing.T) {
	root := mountTmpfs(t)
	sub := filepath.Join(root, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := collectorConfig(root)
	cfg.Mark = "inode"
	c := startTestCollector(t, cfg, collectorOptions{})
	w := watchOf(t, c.Stats(), root)
	if w.Strategy != "inode" || w.Status != StatusActive || !strings.Contains(w.LostEvents, "direct children") {
		t.Fatalf("watch %+v: want an active inode mark that names its loss", w)
	}
	run(t, "touch", filepath.Join(sub, "deep"))
	child := filepath.Join(root, "child")
	waitMask(t, c, child, run(t, "touch", child), unix.FAN_CREATE|unix.FAN_CLOSE_WRITE)
	for _, e := range c.Events(all) {
		if e.Path() == filepath.Join(sub, "deep") {
			t.Errorf("inode mark reported a grandchild: %s", e.Action())
		}
	}
}

func TestCollectorReportsPathsItCannotWatch(t *testing.T) {
	root := mountTmpfs(t)
	missing := filepath.Join(root, "missing")
	c := startTestCollector(t, collectorConfig(missing, root), collectorOptions{})
	s := c.Stats()
	if w := watchOf(t, s, missing); w.Status != StatusFailed || !strings.Contains(w.Error, "no such file") || w.Marks != 0 {
		t.Errorf("missing path: %+v, want failed with the reason", w)
	}
	if w := watchOf(t, s, root); w.Status != StatusActive {
		t.Errorf("existing path: %+v, want active", w)
	}
}

func readSysctl(t testing.TB, path string) int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := procfs.ParseSysctlInt(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A mark's object is keyed by what statx reports on this kernel (from 5.8;
// markObject reads the mount ID from fdinfo, which older kernels have).
// The child runs in a pid namespace of its own with the host's /proc, where
// its pid (1) is another process's.
func TestMarkObjectKeysTheMarkedObject(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, "unshare", "--pid", "--fork")
		return
	}
	c := &Collector{proc: procfs.NewFS(procfs.DefaultRoot)}
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/proc", dir, sub} {
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO|unix.STATX_MNT_ID, &stx); err != nil || stx.Mask&unix.STATX_MNT_ID == 0 {
			t.Skipf("statx without the mount ID: %v", err)
		}
		dev := unix.Mkdev(stx.Dev_major, stx.Dev_minor)
		for kind, want := range map[markKind]string{
			markFilesystem: fmt.Sprintf("filesystem %d", dev),
			markMount:      fmt.Sprintf("mount %d", stx.Mnt_id),
			markInode:      fmt.Sprintf("inode %d %d", dev, stx.Ino),
		} {
			if got, err := c.markObject(kind, path); err != nil || got != want {
				t.Errorf("%s, %v mark: %q, %v; want %q", path, kind, got, err, want)
			}
		}
	}
}
