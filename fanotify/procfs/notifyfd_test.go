package procfs

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
)

// keepAll lets a walk keep every mark it parses.
const keepAll = math.MaxInt

func findFD(w *NotifyWalk, pid, fd int) *NotifyFD {
	for i := range w.FDs {
		if w.FDs[i].PID == pid && w.FDs[i].FD == fd {
			return &w.FDs[i]
		}
	}
	return nil
}

func TestWalkNotifyFDs(t *testing.T) {
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	dir := t.TempDir()
	for _, p := range []string{dir, "/"} {
		if _, err := unix.InotifyAddWatch(in, p, unix.IN_CREATE); err != nil {
			t.Fatal(err)
		}
	}
	fan, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_REPORT_FID, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fan)
	if err := unix.FanotifyMark(fan, unix.FAN_MARK_ADD, unix.FAN_MODIFY, unix.AT_FDCWD, dir); err != nil {
		t.Fatal(err)
	}

	walk, err := NewFS(DefaultRoot).WalkNotifyFDs(context.Background(), AllMarks, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	got := findFD(walk, pid, in)
	if got == nil || got.Subsystem != SubsystemInotify || got.Err != nil || got.Info.MarkCount != 2 {
		t.Fatalf("inotify fd %d: got %+v", in, got)
	}
	got = findFD(walk, pid, fan)
	if got == nil || got.Subsystem != SubsystemFanotify || got.Err != nil || !got.Info.HasGroup ||
		got.Info.MarkCount != 1 || slices.Collect(got.Info.All())[0].Kind != MarkInode {
		t.Fatalf("fanotify fd %d: got %+v", fan, got)
	}
	if walk.TimedOut {
		t.Error("walk without deadline reported a timeout")
	}
	for i := 1; i < len(walk.FDs); i++ {
		a, b := walk.FDs[i-1], walk.FDs[i]
		if a.PID > b.PID || a.PID == b.PID && a.FD >= b.FD {
			t.Fatalf("fds not sorted: %d:%d before %d:%d", a.PID, a.FD, b.PID, b.FD)
		}
	}
}

// A walk asked for one subsystem finds the other's fds without reading
// their fdinfo; ReadMore reads them later, and drops the fds closed since.
func TestWalkNotifyFDsReadsOnlyWhatIsAsked(t *testing.T) {
	in := fanotifytest.Inotify(t, t.TempDir())
	gone := fanotifytest.Inotify(t, t.TempDir())
	fan := fanotifytest.Fanotify(t, unix.FAN_REPORT_FID)
	fanotifytest.Mark(t, fan, 0, unix.FAN_MODIFY, t.TempDir())
	defer fanotifytest.Close(in, fan)
	fs := NewFS(DefaultRoot)
	walk, err := fs.WalkNotifyFDs(context.Background(), Fanotify, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	if f := findFD(walk, pid, fan); f == nil || f.Info.MarkCount != 1 || walk.Read != Fanotify {
		t.Fatalf("fanotify fd %d read: got %+v (read %v)", fan, f, walk.Read)
	}
	if f := findFD(walk, pid, in); f != nil {
		t.Fatalf("a fanotify-only walk read inotify fd %d: %+v", in, f)
	}
	if !slices.ContainsFunc(walk.Unread, func(f NotifyFD) bool { return f.PID == pid && f.FD == in && f.Subsystem == SubsystemInotify }) {
		t.Fatalf("inotify fd %d not among the unread: %+v", in, walk.Unread)
	}
	unix.Close(gone)

	full := fs.ReadMore(context.Background(), walk, Inotify)
	if f := findFD(full, pid, in); f == nil || f.Info.MarkCount != 1 || f.Err != nil {
		t.Fatalf("inotify fd %d after ReadMore: %+v", in, f)
	}
	if f := findFD(full, pid, gone); f != nil {
		t.Errorf("fd %d, closed after the walk, was kept: %+v", gone, f)
	}
	if full.Read != AllMarks || len(full.Unread) != 0 || full.TimedOut || !full.Complete() {
		t.Errorf("after ReadMore: read %v, %d unread, timed out %v", full.Read, len(full.Unread), full.TimedOut)
	}
	if findFD(walk, pid, in) != nil || len(walk.Unread) == 0 {
		t.Error("ReadMore changed the walk it read from")
	}
	for i := 1; i < len(full.FDs); i++ {
		if a, b := full.FDs[i-1], full.FDs[i]; a.PID > b.PID || a.PID == b.PID && a.FD >= b.FD {
			t.Fatalf("fds not sorted: %d:%d before %d:%d", a.PID, a.FD, b.PID, b.FD)
		}
	}
}

// A walk that counts marks finds as many as one that parses them, and keeps
// none; ReadMore then parses them.
func TestWalkNotifyFDsCountsMarks(t *testing.T) {
	dir := t.TempDir()
	in := fanotifytest.Inotify(t, dir, t.TempDir(), t.TempDir())
	fan := fanotifytest.Fanotify(t, unix.FAN_REPORT_FID)
	fanotifytest.Mark(t, fan, 0, unix.FAN_MODIFY, dir)
	defer fanotifytest.Close(in, fan)
	fs := NewFS(DefaultRoot)
	counted, err := fs.WalkNotifyFDs(context.Background(), InotifyCounts|Fanotify, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	c := findFD(counted, pid, in)
	if c == nil || c.Info.MarkCount != 3 || c.Err != nil || len(slices.Collect(c.Info.All())) != 0 {
		t.Fatalf("counted inotify fd %d: %+v, want 3 watches counted and none kept", in, c)
	}
	if f := findFD(counted, pid, fan); f == nil || len(slices.Collect(f.Info.All())) != 1 {
		t.Fatalf("fanotify fd %d: %+v, want its mark parsed", fan, f)
	}
	parsed := fs.ReadMore(context.Background(), counted, Inotify)
	p := findFD(parsed, pid, in)
	if p == nil || len(slices.Collect(p.Info.All())) != 3 || parsed.Read != AllMarks {
		t.Fatalf("inotify fd %d after ReadMore: %+v (read %v), want its 3 watches parsed", in, p, parsed.Read)
	}
	if f := findFD(parsed, pid, fan); f == nil || len(slices.Collect(f.Info.All())) != 1 {
		t.Errorf("fanotify fd %d after ReadMore: %+v, want it kept", fan, f)
	}
}

// The fds of a process that exits between the walk and ReadMore are
// dropped; the process does not count as unreadable.
func TestReadMoreAfterExit(t *testing.T) {
	in := fanotifytest.Inotify(t, t.TempDir())
	cmd := exec.Command("sleep", "1000")
	pid := fanotifytest.HoldCommand(t, cmd, nil, in)
	fanotifytest.Close(in)
	fs := NewFS(DefaultRoot)
	walk, err := fs.WalkNotifyFDs(context.Background(), Fanotify, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(walk.Unread, func(f NotifyFD) bool { return f.PID == pid }) {
		t.Fatalf("holder %d's inotify fd not among the unread", pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	full := fs.ReadMore(context.Background(), walk, Inotify)
	if slices.ContainsFunc(full.FDs, func(f NotifyFD) bool { return f.PID == pid }) {
		t.Error("the fds of an exited process were kept")
	}
	if full.Unreadable != walk.Unreadable {
		t.Errorf("an exited process counted as unreadable: %d, walk %d", full.Unreadable, walk.Unreadable)
	}
}

func TestWalkNotifyFDsOverBudget(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	walk, err := NewFS(DefaultRoot).WalkNotifyFDs(ctx, AllMarks, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !walk.TimedOut || walk.Complete() {
		t.Fatalf("a walk whose context ended is not marked incomplete: %+v", walk)
	}
}

// ReadMore stopped by its context marks the result timed out; the
// processes it did not get to are missing from it, as from a walk that
// timed out, not unreadable.
func TestReadMoreOverBudget(t *testing.T) {
	in := fanotifytest.Inotify(t, t.TempDir())
	defer fanotifytest.Close(in)
	fs := NewFS(DefaultRoot)
	walk, err := fs.WalkNotifyFDs(context.Background(), Fanotify, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	more := fs.ReadMore(ctx, walk, Inotify)
	if !more.TimedOut || more.Complete() {
		t.Fatalf("ReadMore whose context ended is not marked incomplete: %+v", more)
	}
	if more.Unreadable != walk.Unreadable {
		t.Errorf("processes not reached counted as unreadable: %d, walk %d", more.Unreadable, walk.Unreadable)
	}
	if findFD(more, os.Getpid(), in) != nil {
		t.Errorf("inotify fd %d read after the context ended", in)
	}
}

// TestTextSubsystem checks which texts vouch for their subsystem on their
// own (no second readlink) and which leave it to the link.
func TestTextSubsystem(t *testing.T) {
	for _, tc := range []struct{ fixture, want string }{
		{"fanotify-6.18.txt", SubsystemFanotify},
		{"fanotify-no-marks.txt", SubsystemFanotify},
		{"fanotify-4.4-no-fhandle.txt", SubsystemFanotify},
		{"inotify-6.18.txt", SubsystemInotify},
		{"inotify-4.4-no-fhandle.txt", SubsystemInotify},
		{"malformed-bad-hex.txt", ""},
	} {
		text, err := os.ReadFile("testdata/fdinfo/" + tc.fixture)
		if err != nil {
			t.Fatal(err)
		}
		info, err := ParseFdinfo(text)
		if got := textSubsystem(info, err); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.fixture, got, tc.want)
		}
	}
	// An inotify instance without watches prints what any fd does.
	empty, err := ParseFdinfo([]byte("pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1057\n"))
	if got := textSubsystem(empty, err); got != "" {
		t.Errorf("header only: %q, want none", got)
	}
}

// An instance without watches cannot vouch for itself: the walk still
// finds it, through the link.
func TestWalkNotifyFDsEmptyInstance(t *testing.T) {
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(in)
	walk, err := NewFS(DefaultRoot).WalkNotifyFDs(context.Background(), AllMarks, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := findFD(walk, os.Getpid(), in)
	if got == nil || got.Subsystem != SubsystemInotify || got.Err != nil || got.Info.MarkCount != 0 {
		t.Fatalf("empty inotify fd %d: got %+v", in, got)
	}
}

// An instance whose fdinfo is larger than the 64 KiB read buffer is read in
// pieces: every watch is found, once.
func TestWalkNotifyFDsLargeInstance(t *testing.T) {
	const watches = 1500 // about 140 KB of fdinfo
	in := manyWatches(t, watches)
	text, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", in))
	if err != nil || len(text) <= 64<<10 {
		t.Fatalf("fdinfo of %d bytes (%v): want more than the read buffer", len(text), err)
	}
	walk, err := NewFS(DefaultRoot).WalkNotifyFDs(context.Background(), AllMarks, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := findFD(walk, os.Getpid(), in)
	if got == nil || got.Err != nil || got.Info.MarkCount != watches {
		t.Fatalf("inotify fd %d: got %+v", in, got)
	}
	wds := map[int32]bool{}
	for _, m := range slices.Collect(got.Info.All()) {
		wds[m.WD] = true
	}
	if len(wds) != watches {
		t.Errorf("%d distinct watch descriptors, want %d", len(wds), watches)
	}
}

// The fdinfo of an fd an earlier walk found with many marks is read with
// plain system calls, by the walk and by ReadMore from it; the rest, and
// every fd of a walk without an earlier one, quickly. Both read every mark.
func TestWalkReadsLongFdinfoPlainly(t *testing.T) {
	big, small := manyWatches(t, longReadMarks), manyWatches(t, 3)
	fs, pid := NewFS(DefaultRoot), os.Getpid()
	first, err := fs.WalkNotifyFDs(context.Background(), InotifyCounts, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Long.syscallsFor(pid, big) != quick {
		t.Errorf("a walk without an earlier one reads fd %d plainly", big)
	}
	long := LongReadsOf(first)
	second, err := fs.WalkNotifyFDs(context.Background(), FanotifyCounts, keepAll, long)
	if err != nil {
		t.Fatal(err)
	}
	second = fs.ReadMore(context.Background(), second, InotifyCounts)
	for _, tc := range []struct {
		fd, marks int
		sys       syscalls
	}{{big, longReadMarks, mayWait}, {small, 3, quick}} {
		if got := second.Long.syscallsFor(pid, tc.fd); got != tc.sys {
			t.Errorf("fd %d of %d watches: read quickly %v, want %v", tc.fd, tc.marks, got, tc.sys)
		}
		if f := findFD(second, pid, tc.fd); f == nil || f.Err != nil || f.Info.MarkCount != tc.marks {
			t.Errorf("fd %d: %+v, want %d watches", tc.fd, f, tc.marks)
		}
	}
}

// manyWatches is an inotify instance watching n new files, closed at
// cleanup.
func manyWatches(tb testing.TB, n int) int {
	tb.Helper()
	fd := fanotifytest.Inotify(tb, fanotifytest.Files(tb, n)...)
	tb.Cleanup(func() { unix.Close(fd) })
	return fd
}

// A directory whose entries take several getdents calls is listed whole,
// without . and .., each name NUL-terminated; the listing ends where its
// callback says.
func TestEachNameListsEveryEntry(t *testing.T) {
	dir := t.TempDir()
	want := map[string]bool{}
	for i := range 3000 { // about 250 KiB of dirents: several 64 KiB reads
		name := fmt.Sprintf("entry-with-a-name-long-enough-that-few-fit-in-one-read-%05d", i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		want[name] = true
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var names []string
	err = eachName(fd, func(name []byte) bool {
		if name[len(name)-1] != 0 {
			t.Fatalf("name %q is not NUL-terminated", name)
		}
		names = append(names, string(name[:len(name)-1]))
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, n := range names {
		got[n] = true
	}
	if len(names) != len(want) || !maps.Equal(got, want) {
		t.Errorf("%d names (%d distinct), want the %d entries", len(names), len(got), len(want))
	}
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		t.Fatal(err)
	}
	seen := 0
	if err := eachName(fd, func([]byte) bool { seen++; return seen < 10 }); err != nil || seen != 10 {
		t.Errorf("a listing told to stop at the tenth name saw %d (%v)", seen, err)
	}
}

// A walk keeps no more marks than it is allowed (none here): it counts
// them, as many as a walk that keeps them, and so does ReadMore from it;
// ReadNotifyFD reads them again whole.
func TestWalkNotifyFDsKeepsWithinItsBudget(t *testing.T) {
	in := fanotifytest.Inotify(t, t.TempDir(), t.TempDir(), t.TempDir())
	fan := fanotifytest.Fanotify(t, unix.FAN_REPORT_FID)
	fanotifytest.Mark(t, fan, 0, unix.FAN_MODIFY, t.TempDir())
	defer fanotifytest.Close(in, fan)
	fs, pid := NewFS(DefaultRoot), os.Getpid()
	all, err := fs.WalkNotifyFDs(context.Background(), AllMarks, keepAll, nil)
	if err != nil {
		t.Fatal(err)
	}
	none, err := fs.WalkNotifyFDs(context.Background(), Fanotify, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	none = fs.ReadMore(context.Background(), none, Inotify)
	for _, fd := range []int{in, fan} {
		kept, counted := findFD(all, pid, fd), findFD(none, pid, fd)
		if kept == nil || !kept.Info.Kept() || counted == nil {
			t.Fatalf("fd %d: kept %+v, counted %+v", fd, kept, counted)
		}
		if counted.Info.Kept() || counted.Info.MarkCount != kept.Info.MarkCount {
			t.Errorf("fd %d past the budget: %+v, want its %d marks counted, none kept", fd, counted.Info, kept.Info.MarkCount)
		}
		again, ok, err := fs.ReadNotifyFD(pid, fd, counted.Subsystem)
		if err != nil || !ok || !again.Info.Kept() || !slices.EqualFunc(slices.Collect(again.Info.All()), slices.Collect(kept.Info.All()),
			func(a, b Mark) bool { return a.Inode == b.Inode && a.Mask == b.Mask && a.Kind == b.Kind }) {
			t.Errorf("fd %d read again: %+v, %v, %v; want the marks of the walk that kept them", fd, again, ok, err)
		}
	}
}
