package procfs

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

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

	walk, err := NewFS(DefaultRoot).WalkNotifyFDs(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid()
	got := findFD(walk, pid, in)
	if got == nil || got.Subsystem != SubsystemInotify || got.Err != nil || len(got.Info.Marks) != 2 {
		t.Fatalf("inotify fd %d: got %+v", in, got)
	}
	got = findFD(walk, pid, fan)
	if got == nil || got.Subsystem != SubsystemFanotify || got.Err != nil || !got.Info.HasGroup ||
		len(got.Info.Marks) != 1 || got.Info.Marks[0].Kind != MarkInode {
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

func TestWalkNotifyFDsOverBudget(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	walk, err := NewFS(DefaultRoot).WalkNotifyFDs(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !walk.TimedOut || walk.Complete() {
		t.Fatalf("a walk whose context ended is not marked incomplete: %+v", walk)
	}
}
