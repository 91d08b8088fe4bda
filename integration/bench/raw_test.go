package main

import (
	"fmt"
	"os"
	"strconv"
	"testing"

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
