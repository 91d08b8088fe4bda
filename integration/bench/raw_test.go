package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
)

// The identity baseline reads what the holder columns show: both namespace
// links and the comm and cgroup files, whole.
func TestReadIdentityReadsTheHolderColumnsSources(t *testing.T) {
	want := 0
	for _, ns := range []string{"/proc/self/ns/user", "/proc/self/ns/mnt"} {
		link, err := os.Readlink(ns)
		if err != nil {
			t.Fatal(err)
		}
		want += len(link)
	}
	for _, file := range []string{"/proc/self/comm", "/proc/self/cgroup"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want += len(data)
	}
	if got := newRawReader().readIdentity([]byte("self")); got != want {
		t.Fatalf("read %d bytes of the identity, want %d", got, want)
	}
}

// The mountinfo baseline finds the namespace only a thread is in, as
// mount_points does, and reads it through that thread.
func TestMountNamespaceReadersFindAThreadsNamespace(t *testing.T) {
	tid, mntNS := fanotifytest.MountNamespaceThread(t, t.TempDir())
	readers, err := newRawReader().mountNamespaceReaders()
	if err != nil {
		t.Fatal(err)
	}
	if got := readers[fmt.Sprintf("mnt:[%d]", mntNS)]; got != strconv.Itoa(tid) {
		t.Errorf("namespace %d of thread %d read through %q", mntNS, tid, got)
	}
}

// The raw walk allocates nothing: it is the least a walk costs in Go.
func TestRawWalkAllocatesNothing(t *testing.T) {
	r := newRawReader()
	if allocs := testing.AllocsPerRun(5, func() { rawWalk(r) }); allocs != 0 {
		t.Fatalf("the raw walk allocated %v times", allocs)
	}
}

// The C walk's --groups finds the open files its fds share: alone in a pid
// namespace of its own, holding one inotify instance through two fds and
// another through one, it adds 2 (files) to the bytes the walk reads.
func TestCWalkGroupsCountsSharedFilesOnce(t *testing.T) {
	c, err := buildCBaselines()
	if errors.Is(err, errNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(c.dir)
	// Each fd handed over is one of its own: the first instance's twice.
	first := fanotifytest.Inotify(t)
	again, err := unix.FcntlInt(uintptr(first), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	second := fanotifytest.Inotify(t)
	var fds []*os.File
	for _, fd := range []int{first, again, second} {
		f := os.NewFile(uintptr(fd), "inotify")
		defer f.Close()
		fds = append(fds, f)
	}
	walkAlone := func(args ...string) int64 {
		cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", c.walk, "1", inotifyLink}, args...)...)
		cmd.ExtraFiles = fds
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
		var cpu, wall, bytes int64
		if _, err := fmt.Sscan(string(out), &cpu, &wall, &bytes); err != nil {
			t.Fatalf("%v said %q: %v", cmd, out, err)
		}
		return bytes
	}
	if files := walkAlone("--groups") - walkAlone(); files != 2 {
		t.Fatalf("--groups added %d, want 2 files", files)
	}
}

// The raw walk in two passes leaves the inotify fds it finds, this test's
// among them, for its second pass, and allocates nothing once its list of
// them has grown.
func TestRawWalkInTwoPassesReadsInotifyFdinfoSecond(t *testing.T) {
	fd := fanotifytest.Inotify(t)
	defer unix.Close(fd)
	r := newRawReader()
	if _, err := rawWalkInTwoPasses(r); err != nil {
		t.Fatal(err)
	}
	ours := fmt.Sprintf("/proc/%d/fdinfo/%d\x00", os.Getpid(), fd)
	if !bytes.Contains(r.laterPaths, []byte(ours)) {
		t.Fatalf("the second pass did not read %q", ours)
	}
	if allocs := testing.AllocsPerRun(5, func() { rawWalkInTwoPasses(r) }); allocs != 0 {
		t.Fatalf("the walk in two passes allocated %v times", allocs)
	}
}
