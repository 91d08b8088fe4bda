package fanotify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// testUID is the euid the holders run as, so that the usage charged to it
// is only what these tests create.
const testUID = 3123456789

func newTestScanner() *Scanner {
	return NewScanner(procfs.NewFS(procfs.DefaultRoot), 10*time.Second, KeptMarks, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// groupHeldBy finds the group that pid holds as fd.
func groupHeldBy(t *testing.T, groups []*Group, pid, fd int) *Group {
	t.Helper()
	for _, g := range groups {
		for _, h := range g.Holders {
			if h.PID == pid && h.FD == fd {
				return g
			}
		}
	}
	t.Fatalf("no group held by pid %d fd %d", pid, fd)
	return nil
}

func countKinds(g *Group) map[procfs.MarkKind]int {
	n := make(map[procfs.MarkKind]int)
	for _, m := range slices.Collect(g.Info.All()) {
		n[m.Kind]++
	}
	return n
}

func TestSnapshotCountsSharedGroups(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.DedupExact() {
		t.Fatal("kcmp is available as root, yet dedup is not exact")
	}

	a := groupHeldBy(t, snap.Fanotify(), h.PID1, 3)
	if a != groupHeldBy(t, snap.Fanotify(), h.PID1, 4) || a != groupHeldBy(t, snap.Fanotify(), h.PID2, 3) {
		t.Fatal("a dup and a fork of one group show up as different groups")
	}
	wantID := strconv.Itoa(min(h.PID1, h.PID2)) + ":3"
	if len(a.Holders) != 3 || a.ID != wantID {
		t.Errorf("group A: %d holders, ID %s; want 3 and %s", len(a.Holders), a.ID, wantID)
	}
	wantKinds := map[procfs.MarkKind]int{procfs.MarkInode: 3, procfs.MarkMount: 1, procfs.MarkFilesystem: 1}
	if got := countKinds(a); !maps.Equal(got, wantKinds) || a.ChargedMarks() != 5 {
		t.Errorf("group A marks %v (charged %d), want %v (5)", got, a.ChargedMarks(), wantKinds)
	}
	if a.Charge() != (Charge{UserNS: InitialUserNS, UID: testUID}) {
		t.Errorf("group A charged to %+v", a.Charge())
	}

	b := groupHeldBy(t, snap.Fanotify(), h.PID2, 5)
	if !b.UnlimitedMarks() || b.Info.MarkCount != 1 || b.ChargedMarks() != 0 {
		t.Errorf("FAN_UNLIMITED_MARKS group: unlimited %v, %d marks, charged %d; want true, 1, 0",
			b.UnlimitedMarks(), b.Info.MarkCount, b.ChargedMarks())
	}
	c := groupHeldBy(t, snap.Fanotify(), h.PID2, 6)
	if got := countKinds(c); got[procfs.MarkMntNS] != 1 || c.Info.MarkCount != 1 {
		t.Errorf("FAN_REPORT_MNT group marks %v, want one mntns mark", got)
	}

	if i1 := groupHeldBy(t, snap.Inotify(), h.PID1, 5); i1.Info.MarkCount != 2 || len(i1.Holders) != 1 {
		t.Errorf("instance I1: %d watches, %d holders; want 2 and 1", i1.Info.MarkCount, len(i1.Holders))
	}
	if i2 := groupHeldBy(t, snap.Inotify(), h.PID2, 4); i2.Info.MarkCount != 0 {
		t.Errorf("instance I2: %d watches, want 0", i2.Info.MarkCount)
	}

	want := Counts{Groups: 4, Marks: 5 + 1, Instances: 2, Watches: 2}
	if got := snap.Direct()[Charge{UserNS: InitialUserNS, UID: testUID}]; got != want {
		t.Errorf("usage charged to uid %d: %+v, want %+v", testUID, got, want)
	}
}

func TestSnapshotMarkPaths(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	a := groupHeldBy(t, snap.Fanotify(), h.PID1, 3)
	holder := a.Holders[slices.IndexFunc(a.Holders, func(x Holder) bool { return x.PID == h.PID1 })]
	var paths []string
	for _, m := range slices.Collect(a.Info.All()) {
		paths = append(paths, m.Kind.String()+" "+markPath(snap, holder, m))
	}
	slices.Sort(paths)
	want := []string{"filesystem /", "inode " + h.Files[0], "inode " + h.Files[1], "inode " + h.Files[2], "mount /"}
	if !slices.Equal(paths, want) {
		t.Errorf("mark paths %q, want %q", paths, want)
	}
	i1 := groupHeldBy(t, snap.Inotify(), h.PID1, 5)
	for _, m := range slices.Collect(i1.Info.All()) {
		if p := markPath(snap, holder, m); p != h.Files[0] && p != filepath.Dir(h.Files[0]) {
			t.Errorf("watch wd %d resolves to %q", m.WD, p)
		}
	}
}

// A holder in a user namespace nested two deep is charged there, and the
// namespaces' owners above it; it is the process found living there.
func TestSnapshotChargingChain(t *testing.T) {
	pid := fanotifytest.HoldInNestedUserNS(t)
	inner, err := procfs.NewFS(procfs.DefaultRoot).NamespaceInode(pid, "user")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	g := groupHeldBy(t, snap.Inotify(), pid, 3)
	if g.Charge().UserNS != inner {
		t.Fatalf("instance charged in user ns %d, want the holder's %d", g.Charge().UserNS, inner)
	}
	up, known := snap.Ancestors()[inner]
	chain := append([]Charge{g.Charge()}, up...)
	if !known || len(chain) != 3 {
		t.Fatalf("chain %+v (known %v), want 3 levels", chain, known)
	}
	if outer := chain[1].UserNS; outer == inner || outer == InitialUserNS || chain[2] != (Charge{UserNS: InitialUserNS, UID: 0}) || chain[1].UID != 0 {
		t.Errorf("chain %+v: want [inner ns, (outer ns, uid 0), (initial ns, uid 0)]", chain)
	}
	// The holder lives in the inner namespace; nothing in the outer one.
	if got, ok := snap.ProcessIn(inner); !ok || got != pid {
		t.Errorf("ProcessIn(inner) = %d, %v; want the holder %d", got, ok, pid)
	}
	if got, ok := snap.ProcessIn(chain[1].UserNS); ok {
		t.Errorf("ProcessIn(outer) = %d, want none: no process lives there", got)
	}
}

// fdinfo's flags: line differs between a close-on-exec fd and its plain
// dup; they are still one instance.
func TestSnapshotDedupIgnoresCloseOnExec(t *testing.T) {
	fd := fanotifytest.Inotify(t, t.TempDir())
	defer unix.Close(fd)
	dup, err := unix.Dup(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	g := groupHeldBy(t, snap.Inotify(), os.Getpid(), fd)
	if g != groupHeldBy(t, snap.Inotify(), os.Getpid(), dup) || len(g.Holders) != 2 {
		t.Errorf("fd %d and its dup %d: holders %+v, want one instance held twice", fd, dup, g.Holders)
	}
}

// FDGroups makes every fd a group of its own without matching fds to open
// files: a dup and a fork of one group are three groups there, and one
// group of three holders in Groups.
func TestFDGroupsMatchNoFDs(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	fds := snap.FDGroups(procfs.SubsystemFanotify)
	if snap.fanotify != nil || snap.inotify != nil {
		t.Error("FDGroups matched the fds to open files")
	}
	for _, held := range [][2]int{{h.PID1, 3}, {h.PID1, 4}, {h.PID2, 3}} {
		if g := groupHeldBy(t, fds, held[0], held[1]); len(g.Holders) != 1 || g.ID != strconv.Itoa(held[0])+":"+strconv.Itoa(held[1]) {
			t.Errorf("pid %d fd %d: group %s of %d holders, want its own", held[0], held[1], g.ID, len(g.Holders))
		}
	}
	if a := groupHeldBy(t, snap.Fanotify(), h.PID2, 3); len(a.Holders) != 3 {
		t.Errorf("group A in Groups: %d holders, want 3", len(a.Holders))
	}
}

// Without kcmp the fds of one group cannot be matched: each counts as a
// group of its own, and the snapshot says so.
func TestDedupWithoutKcmpCountsPerFD(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	walk, err := procfs.NewFS(procfs.DefaultRoot).WalkNotifyFDs(context.Background(), procfs.AllMarks, KeptMarks, nil)
	if err != nil {
		t.Fatal(err)
	}
	groups, exact, _ := dedup(walk.FDs, processesOf(walk), func(a, b *procfs.NotifyFD) (int, error) { return 0, unix.ENOSYS }, nil)
	if exact {
		t.Error("dedup without kcmp claims to be exact")
	}
	for _, fd := range []int{3, 4} {
		if g := groupHeldBy(t, groups, h.PID1, fd); len(g.Holders) != 1 || g.ID != strconv.Itoa(h.PID1)+":"+strconv.Itoa(fd) {
			t.Errorf("pid %d fd %d: group %s with %d holders, want its own", h.PID1, fd, g.ID, len(g.Holders))
		}
	}
}

// Where kcmp is refused, the warning is logged once, not by every snapshot
// that groups fds.
func TestKcmpWarningLoggedOnce(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, "env")
		return
	}
	in, other := fanotifytest.Inotify(t), fanotifytest.Inotify(t) // two to compare
	defer fanotifytest.Close(in, other)
	fanotifytest.RefuseSyscall(t, unix.SYS_KCMP)
	var logged bytes.Buffer
	s := NewScanner(procfs.NewFS(procfs.DefaultRoot), 10*time.Second, KeptMarks, slog.New(slog.NewTextHandler(&logged, nil)))
	var snaps []*Snapshot
	for _, need := range []procfs.Reads{procfs.InotifyCounts, procfs.AllMarks} {
		snap, err := s.Snapshot(context.Background(), need)
		if err != nil {
			t.Fatal(err)
		}
		if snap.DedupExact() {
			t.Fatal("dedup without kcmp claims to be exact")
		}
		snaps = append(snaps, snap)
	}
	if snaps[0] == snaps[1] {
		t.Fatal("the second query took the first snapshot: nothing to compare")
	}
	if n := strings.Count(logged.String(), "kcmp"); n != 1 {
		t.Errorf("kcmp warning logged %d times, want once:\n%s", n, logged.String())
	}
}

// In a child pid namespace that kept the host's proc, the walk's pids are
// not the ones kcmp takes: a dup of one instance counts per fd, and the
// snapshot says it is not exact.
func TestDedupWithPidsOfAnotherNamespaceCountsPerFD(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, "unshare", "--pid", "--fork")
		return
	}
	in := fanotifytest.Inotify(t)
	dup, err := unix.Dup(in)
	if err != nil {
		t.Fatal(err)
	}
	defer fanotifytest.Close(in, dup)
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	self, err := procfs.NewFS(procfs.DefaultRoot).SelfPID()
	if err != nil {
		t.Fatal(err)
	}
	if snap.DedupExact() {
		t.Error("dedup through pids of another pid namespace claims to be exact")
	}
	for _, fd := range []int{in, dup} {
		if g := groupHeldBy(t, snap.Inotify(), self, fd); len(g.Holders) != 1 {
			t.Errorf("fd %d: %d holders, want a group of its own", fd, len(g.Holders))
		}
	}
}

// A snapshot that counts marks finds the groups, holders, counts and
// charges one that parses them does: the limits read the counts alone.
func TestSnapshotCountingMatchesParsing(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	parsed, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	counted, err := newTestScanner().Snapshot(context.Background(), procfs.FanotifyCounts|procfs.InotifyCounts)
	if err != nil {
		t.Fatal(err)
	}
	if counted.Covers(procfs.Fanotify) || counted.Covers(procfs.Inotify) {
		t.Fatal("the counting snapshot parsed marks")
	}
	for _, held := range []struct {
		pid, fd int
		inotify bool
	}{{h.PID1, 3, false}, {h.PID2, 5, false}, {h.PID2, 6, false}, {h.PID1, 5, true}, {h.PID2, 4, true}} {
		from := func(s *Snapshot) *Group {
			if held.inotify {
				return groupHeldBy(t, s.Inotify(), held.pid, held.fd)
			}
			return groupHeldBy(t, s.Fanotify(), held.pid, held.fd)
		}
		p, c := from(parsed), from(counted)
		if c.ID != p.ID || len(c.Holders) != len(p.Holders) || c.Info.MarkCount != p.Info.MarkCount ||
			c.ChargedMarks() != p.ChargedMarks() || len(slices.Collect(c.Info.All())) != 0 {
			t.Errorf("pid %d fd %d: counted %s, %d holders, %d marks (%d charged); parsed %s, %d, %d (%d)", held.pid, held.fd,
				c.ID, len(c.Holders), c.Info.MarkCount, c.ChargedMarks(), p.ID, len(p.Holders), p.Info.MarkCount, p.ChargedMarks())
		}
	}
	charge := Charge{UserNS: InitialUserNS, UID: testUID}
	if c, p := counted.Direct()[charge], parsed.Direct()[charge]; c != p {
		t.Errorf("usage charged to uid %d: counted %+v, parsed %+v", testUID, c, p)
	}
}

// A snapshot past the marks it keeps (none here) counts them like one that
// keeps them, and Marks reads them again, unless the query gave up; a group
// whose fd was closed since then has none.
func TestSnapshotMarksPastWhatItKeeps(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	kept, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	counted, err := NewScanner(procfs.NewFS(procfs.DefaultRoot), 10*time.Second, 0, log).Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	for _, held := range []struct{ pid, fd int }{{h.PID1, 3}, {h.PID2, 5}, {h.PID2, 6}} {
		k, c := groupHeldBy(t, kept.Fanotify(), held.pid, held.fd), groupHeldBy(t, counted.Fanotify(), held.pid, held.fd)
		if c.Info.Kept() || c.Info.MarkCount != k.Info.MarkCount || len(slices.Collect(c.Info.All())) != 0 {
			t.Errorf("pid %d fd %d: %+v past the budget, want %d marks counted, none kept", held.pid, held.fd, c.Info, k.Info.MarkCount)
		}
		if got, want := slices.Collect(c.Marks(context.Background())), slices.Collect(k.Marks(context.Background())); !slices.EqualFunc(got, want, sameMark) {
			t.Errorf("pid %d fd %d: marks read again %+v, kept %+v", held.pid, held.fd, got, want)
		}
	}
	i1 := groupHeldBy(t, counted.Inotify(), h.PID1, 5)
	if n := len(slices.Collect(i1.Marks(context.Background()))); n != 2 {
		t.Errorf("instance I1: %d watches read again, want 2", n)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if n := len(slices.Collect(i1.Marks(ended))); n != 0 {
		t.Errorf("instance I1 for a query that gave up: %d watches read again, want none", n)
	}
	if n := len(slices.Collect(groupHeldBy(t, kept.Inotify(), h.PID1, 5).Marks(ended))); n != 2 {
		t.Errorf("instance I1 kept by its walk, for a query that gave up: %d watches, want its 2", n)
	}
	syscall.Kill(h.PID1, syscall.SIGKILL)
	fanotifytest.WaitZombie(t, h.PID1)
	if n := len(slices.Collect(i1.Marks(context.Background()))); n != 0 {
		t.Errorf("instance I1 after its holder exited: %d watches, want none", n)
	}
}

func sameMark(a, b procfs.Mark) bool {
	return a.Kind == b.Kind && a.Inode == b.Inode && a.Dev == b.Dev && a.MountID == b.MountID && a.MntNS == b.MntNS &&
		a.Mask == b.Mask && a.IgnoredMask == b.IgnoredMask && a.Flags == b.Flags && string(a.Handle.Raw) == string(b.Handle.Raw)
}

// The fds of one group are one group even when their fdinfo differs: read
// one after the other, their texts show the marks of different moments.
func TestDedupMatchesAGroupWhoseMarksChanged(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	walk, err := procfs.NewFS(procfs.DefaultRoot).WalkNotifyFDs(context.Background(), procfs.AllMarks, KeptMarks, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The text of A's fd in the second holder, as if a mark had been
	// added after the first holder's fds were read.
	k := slices.IndexFunc(walk.FDs, func(f procfs.NotifyFD) bool { return f.PID == h.PID2 && f.FD == 3 })
	if k < 0 {
		t.Fatalf("pid %d fd 3 not found", h.PID2)
	}
	changed, err := procfs.ParseFdinfo([]byte("fanotify flags:200 event-flags:8000\nfanotify ino:2e1 sdev:fe00000 mflags:0 mask:2 ignored_mask:0\n"))
	if err != nil {
		t.Fatal(err)
	}
	walk.FDs[k].Info = changed
	groups, exact, _ := dedup(walk.FDs, processesOf(walk), kernelFileOrder, nil)
	a := groupHeldBy(t, groups, h.PID1, 3)
	if !exact || a != groupHeldBy(t, groups, h.PID2, 3) || len(a.Holders) != 3 {
		t.Errorf("exact %v; group %s has %d holders, pid %d fd 3 in %s: want A held 3 times",
			exact, a.ID, len(a.Holders), h.PID2, groupHeldBy(t, groups, h.PID2, 3).ID)
	}
}

// twoHolders are the fds of n files, two of each: fd i of pid 1 and fd i+n
// of pid 2 hold file i.
func twoHolders(n int) []procfs.NotifyFD {
	var fds []procfs.NotifyFD
	for i := range 2 * n {
		fds = append(fds, procfs.NotifyFD{PID: 1 + i/n, FD: i, Subsystem: procfs.SubsystemInotify})
	}
	return fds
}

// backwards orders the files of twoHolders(n) in the reverse of their
// fds' order, as the kernel's order is not the fds', counting comparisons.
func backwards(n int, compared *int) fileOrder {
	return func(a, b *procfs.NotifyFD) (int, error) {
		*compared++
		return (b.FD % n) - (a.FD % n), nil
	}
}

// groupsSeen is what a test compares of dedup's groups: ids and holders.
func groupsSeen(groups []*Group) []string {
	var seen []string
	for _, g := range groups {
		s := g.ID + " held by"
		for _, h := range g.Holders {
			s += fmt.Sprintf(" %d:%d", h.PID, h.FD)
		}
		seen = append(seen, s)
	}
	return seen
}

// Groups that read alike, such as empty inotify instances, are told apart
// in about log2(groups) comparisons each, not one per group before them.
func TestDedupComparesLogarithmically(t *testing.T) {
	const n = 1024
	fds, compared := twoHolders(n), 0
	groups, exact, _ := dedup(fds, processesOf(&procfs.NotifyWalk{FDs: fds}), backwards(n, &compared), nil)
	if !exact || len(groups) != n {
		t.Fatalf("exact %v, %d groups; want %d", exact, len(groups), n)
	}
	for _, g := range groups {
		if len(g.Holders) != 2 || g.Holders[1].FD != g.Holders[0].FD+n {
			t.Fatalf("group %s: holders %+v, want fds %d and %d", g.ID, g.Holders, g.Holders[0].FD, g.Holders[0].FD+n)
		}
	}
	if limit := 2 * n * 11; compared > limit {
		t.Errorf("%d comparisons for %d fds of %d files, want at most %d", compared, 2*n, n, limit)
	}
}

// Given the ranks of an earlier dedup of the same files, dedup compares
// each fd once, and finds the same groups.
func TestDedupTakesTheHintedOrderFirst(t *testing.T) {
	const n = 1024
	fds, compared := twoHolders(n), 0
	processes := processesOf(&procfs.NotifyWalk{FDs: fds})
	first, _, ranks := dedup(fds, processes, backwards(n, &compared), nil)
	if len(ranks) != len(fds) || ranks[procfs.FDRef{PID: 1, FD: 0}] != n-1 || ranks[procfs.FDRef{PID: 2, FD: n}] != n-1 {
		t.Fatalf("%d ranks, fd 0's %d and fd %d's %d: want %d, file 0 last", len(ranks), ranks[procfs.FDRef{PID: 1, FD: 0}], n, ranks[procfs.FDRef{PID: 2, FD: n}], len(fds))
	}
	compared = 0
	again, exact, ranksAgain := dedup(fds, processes, backwards(n, &compared), ranks)
	if !exact || !slices.Equal(groupsSeen(again), groupsSeen(first)) || !maps.Equal(ranksAgain, ranks) {
		t.Errorf("exact %v; groups or ranks differ from those found without a hint", exact)
	}
	if compared > len(fds) {
		t.Errorf("%d comparisons for %d fds in the order given, want at most one each", compared, len(fds))
	}
}

// A hint that is wrong (the fds' numbers held other files when it was
// made) costs comparisons, not groups.
func TestDedupWithAWrongHintFindsTheSameGroups(t *testing.T) {
	const n = 64
	fds, compared := twoHolders(n), 0
	processes := processesOf(&procfs.NotifyWalk{FDs: fds})
	want, _, _ := dedup(fds, processes, backwards(n, &compared), nil)
	for name, rank := range map[string]func(fd procfs.NotifyFD) int{
		"fd order":               func(fd procfs.NotifyFD) int { return fd.FD },
		"pid 2's files shifted":  func(fd procfs.NotifyFD) int { return (n - 1 - fd.FD%n + fd.PID - 1) % n },
		"one rank for every fd":  func(procfs.NotifyFD) int { return 0 },
		"half of the fds ranked": func(fd procfs.NotifyFD) int { return -1 + 2*(fd.FD%2) },
	} {
		hint := fileRanks{}
		for _, fd := range fds {
			if r := rank(fd); r >= 0 {
				hint[procfs.FDRef{PID: fd.PID, FD: fd.FD}] = r
			}
		}
		got, exact, _ := dedup(fds, processes, backwards(n, &compared), hint)
		if !exact || !slices.Equal(groupsSeen(got), groupsSeen(want)) {
			t.Errorf("hint by %s: exact %v, groups %v; want %v", name, exact, groupsSeen(got), groupsSeen(want))
		}
	}
}

// A group whose first fd closed after the walk keeps its count; the fds
// after it still find their groups.
func TestDedupAroundAGoneFD(t *testing.T) {
	fds := []procfs.NotifyFD{
		{PID: 1, FD: 0, Subsystem: procfs.SubsystemFanotify}, // file 0, gone
		{PID: 1, FD: 1, Subsystem: procfs.SubsystemFanotify}, // file 1
		{PID: 1, FD: 2, Subsystem: procfs.SubsystemFanotify}, // file 2
		{PID: 2, FD: 1, Subsystem: procfs.SubsystemFanotify}, // file 1
		{PID: 2, FD: 2, Subsystem: procfs.SubsystemFanotify}, // file 2
		{PID: 3, FD: 0, Subsystem: procfs.SubsystemFanotify}, // file 0 (a holder outliving the first)
	}
	groups, exact, _ := dedup(fds, processesOf(&procfs.NotifyWalk{FDs: fds}), func(a, b *procfs.NotifyFD) (int, error) {
		if a.PID == 1 && a.FD == 0 || b.PID == 1 && b.FD == 0 {
			return 0, errGone
		}
		return a.FD - b.FD, nil
	}, nil)
	var holders []int
	for _, g := range groups {
		holders = append(holders, len(g.Holders))
	}
	if !exact || !slices.Equal(holders, []int{1, 2, 2, 1}) {
		t.Errorf("exact %v, holders per group %v; want [1 2 2 1]: the gone fd's group, files 1 and 2 shared, file 0's live holder", exact, holders)
	}
}

func TestSnapshotSharedWithinMaxAge(t *testing.T) {
	s := newTestScanner()
	first, second := snapshotOf(t, s), snapshotOf(t, s)
	if first != second {
		t.Error("two snapshots within a second were two walks")
	}
	s.mu.Lock()
	s.lastAt = s.lastAt.Add(-SnapshotMaxAge)
	s.mu.Unlock()
	if third := snapshotOf(t, s); third == first {
		t.Error("a snapshot older than SnapshotMaxAge was reused")
	}
}

// A walk reads plainly the fdinfo of the fds its previous snapshot found
// with many marks (procfs.LongReads).
func TestSnapshotWalkKnowsLongReadsFromThePrevious(t *testing.T) {
	big := fanotifytest.Inotify(t, fanotifytest.Files(t, 2000)...)
	defer unix.Close(big)
	s := newTestScanner()
	if first := snapshotOf(t, s); first.walk.Long != nil {
		t.Fatalf("the first walk has long reads %v: no walk came before it", first.walk.Long)
	}
	s.mu.Lock()
	s.lastAt = s.lastAt.Add(-SnapshotMaxAge)
	s.mu.Unlock()
	if second := snapshotOf(t, s); !second.walk.Long[procfs.FDRef{PID: os.Getpid(), FD: big}] {
		t.Errorf("fd %d of 2,000 watches is not among the second walk's long reads %v", big, second.walk.Long)
	}
}

// On a host whose walk takes longer than a snapshot serves, the queries
// right after it still share it: its age counts from when it was read.
func TestSnapshotOfASlowWalkIsShared(t *testing.T) {
	s := newTestScanner()
	read, walks := s.take, 0
	s.take = func(ctx context.Context, need procfs.Reads, from *Snapshot) (*Snapshot, error) {
		walks++
		snap, err := read(ctx, need, from)
		time.Sleep(SnapshotMaxAge + 100*time.Millisecond) // the rest of a long walk
		return snap, err
	}
	first, second := snapshotOf(t, s), snapshotOf(t, s)
	if second != first || walks != 1 {
		t.Errorf("%d walks: a walk slower than %s served no query after its own", walks, SnapshotMaxAge)
	}
}

// A snapshot completed to read more of its walk's fds is as old as that
// walk: completions in turn do not keep a set of fds fresh.
func TestSnapshotCompletionKeepsItsWalksAge(t *testing.T) {
	s := newTestScanner()
	fan, err := s.Snapshot(context.Background(), procfs.Fanotify)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	ended := s.lastAt.Add(-SnapshotMaxAge / 2)
	s.lastAt = ended
	s.mu.Unlock()
	both, err := s.Snapshot(context.Background(), procfs.Inotify)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if both == fan || !both.Taken.Equal(fan.Taken) || !s.lastAt.Equal(ended) {
		t.Errorf("completed %v (same walk %v): ends at %v, want its walk's end %v", both != fan, both.Taken.Equal(fan.Taken), s.lastAt, ended)
	}
}

// snapshotOf is s's snapshot of every mark.
func snapshotOf(t *testing.T, s *Scanner) *Snapshot {
	t.Helper()
	return snapshotReading(t, s, procfs.AllMarks)
}

// snapshotReading is s's snapshot reading what need asks.
func snapshotReading(t *testing.T, s *Scanner, need procfs.Reads) *Snapshot {
	t.Helper()
	snap, err := s.Snapshot(context.Background(), need)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// A panic in a walk fails its callers with an error, and the next query
// walks again.
func TestSnapshotWalkPanicIsAnError(t *testing.T) {
	s := newTestScanner()
	read := s.take
	s.take = func(context.Context, procfs.Reads, *Snapshot) (*Snapshot, error) { panic("broken fdinfo") }
	if _, err := s.Snapshot(context.Background(), procfs.AllMarks); err == nil || !strings.Contains(err.Error(), "broken fdinfo") {
		t.Fatalf("error %v, want the walk's panic", err)
	}
	s.take = read
	snapshotOf(t, s) // the walk after a panic
}

// A snapshot of one subsystem holds none of the other's groups; asking for
// the other within the second completes it from the same walk, whose
// processes it shares: each identity is read once.
func TestSnapshotCompletedFromItsWalk(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	s := newTestScanner()
	fan, err := s.Snapshot(context.Background(), procfs.Fanotify)
	if err != nil {
		t.Fatal(err)
	}
	if !fan.Covers(procfs.Fanotify) || fan.Covers(procfs.Inotify) || len(fan.Inotify()) != 0 {
		t.Fatalf("a fanotify snapshot covers inotify %v, holds %d instances", fan.Covers(procfs.Inotify), len(fan.Inotify()))
	}
	group := groupHeldBy(t, fan.Fanotify(), h.PID1, 3)
	group.Primary()

	both, err := s.Snapshot(context.Background(), procfs.Inotify)
	if err != nil {
		t.Fatal(err)
	}
	if both == fan || !both.Covers(procfs.AllMarks) || !both.Taken.Equal(fan.Taken) {
		t.Fatalf("completed snapshot: new %v, covers both %v, taken %v (first %v)", both != fan, both.Covers(procfs.AllMarks), both.Taken, fan.Taken)
	}
	if in := groupHeldBy(t, both.Inotify(), h.PID1, 5); in.Info.MarkCount != 2 {
		t.Errorf("inotify instance of pid %d: %d watches, want 2", h.PID1, in.Info.MarkCount)
	}
	again := groupHeldBy(t, both.Fanotify(), h.PID1, 3)
	if again.ID != group.ID || again.Holders[0].process != group.Holders[0].process {
		t.Error("the completed snapshot does not share the first one's processes")
	}
	if !again.Holders[0].details.read(func() error { t.Error("details read again"); return nil }) {
		t.Error("details read by the first snapshot are not kept")
	}
}

// A snapshot hands the order in which it found its fds' files on: to the
// completion of its walk, and to the next walk's snapshot, which keeps it
// for the fds it did not read.
func TestSnapshotHandsItsFileRanksOn(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	s := newTestScanner()
	fan := snapshotReading(t, s, procfs.Fanotify)
	fan.Fanotify()
	ranks := fan.ranks.Load()
	if _, ok := (*ranks)[procfs.FDRef{PID: h.PID1, FD: 3}]; !ok {
		t.Fatalf("pid %d fd 3 has no rank among %d", h.PID1, len(*ranks))
	}
	both := snapshotReading(t, s, procfs.Inotify)
	if both.ranks.Load() != ranks {
		t.Error("the completed snapshot does not start from its walk's ranks")
	}
	both.Inotify()
	s.mu.Lock()
	s.lastAt = s.lastAt.Add(-SnapshotMaxAge)
	s.mu.Unlock()
	next := snapshotReading(t, s, procfs.Fanotify)
	if r := next.ranks.Load(); r == nil || r == ranks {
		t.Fatal("the next walk's snapshot does not start from the ranks of the last one grouped")
	}
	// Grouped, it keeps the ranks of the fds it did not read for its
	// completion.
	next.Fanotify()
	if _, ok := (*next.ranks.Load())[procfs.FDRef{PID: h.PID1, FD: 5}]; !ok {
		t.Errorf("pid %d fd 5 (inotify) lost its rank in a fanotify walk's grouping", h.PID1)
	}
}

// Primary reads the identity of the primary holder's process, not of the
// group's other holders.
func TestPrimaryReadsItsHolderOnly(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.FanotifyCounts)
	if err != nil {
		t.Fatal(err)
	}
	g := groupHeldBy(t, snap.Fanotify(), h.PID1, 3) // group A: held by both processes
	p := g.Primary()
	if p.PID != min(h.PID1, h.PID2) || p.Comm != "sleep" || p.EUID != testUID {
		t.Errorf("primary holder %+v, want pid %d, sleep, euid %d", p.Identity, min(h.PID1, h.PID2), testUID)
	}
	other := g.Holders[len(g.Holders)-1]
	if other.PID == p.PID || other.Comm != "" || other.EUID != 0 {
		t.Errorf("the other holder's identity was read too: %+v", other.Identity)
	}
}

// A snapshot that counted marks is completed with them parsed when a query
// within the second shows them, the other subsystem left counted.
func TestSnapshotCountsCompletedWithMarks(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	s := newTestScanner()
	counted, err := s.Snapshot(context.Background(), procfs.FanotifyCounts|procfs.InotifyCounts)
	if err != nil {
		t.Fatal(err)
	}
	in := groupHeldBy(t, counted.Inotify(), h.PID1, 5)
	if in.Info.MarkCount != 2 || len(slices.Collect(in.Info.All())) != 0 {
		t.Fatalf("counted instance: %d watches, %d kept; want 2 and none", in.Info.MarkCount, len(slices.Collect(in.Info.All())))
	}
	parsed, err := s.Snapshot(context.Background(), procfs.Inotify)
	if err != nil {
		t.Fatal(err)
	}
	if parsed == counted || !parsed.Taken.Equal(counted.Taken) || !parsed.Covers(procfs.Inotify|procfs.FanotifyCounts) || parsed.Covers(procfs.Fanotify) {
		t.Fatalf("completed snapshot: new %v, taken %v (first %v), covers inotify marks %v, fanotify marks %v",
			parsed != counted, parsed.Taken, counted.Taken, parsed.Covers(procfs.Inotify), parsed.Covers(procfs.Fanotify))
	}
	again := groupHeldBy(t, parsed.Inotify(), h.PID1, 5)
	if again.ID != in.ID || len(slices.Collect(again.Info.All())) != 2 {
		t.Errorf("completed instance %s: %d watches parsed; want %s, 2",
			again.ID, len(slices.Collect(again.Info.All())), in.ID)
	}
}

// Callers asking for different subsystems at once each get a snapshot
// covering theirs, and read identities while others complete it (run with
// -race).
func TestSnapshotSubsystemsAskedTogether(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	s := newTestScanner()
	needs := []procfs.Reads{procfs.Fanotify, procfs.Inotify, procfs.AllMarks}
	snaps := make([]*Snapshot, 9)
	var wg sync.WaitGroup
	for i := range snaps {
		wg.Go(func() {
			snap, err := s.Snapshot(context.Background(), needs[i%3])
			if err != nil {
				t.Error(err)
				return
			}
			snap.ReadOwners()
			snaps[i] = snap
		})
	}
	wg.Wait()
	for i, snap := range snaps {
		need := needs[i%3]
		if snap == nil || !snap.Covers(need) {
			t.Fatalf("caller %d asked for %v and got %+v", i, need, snap)
		}
		groups, fd := snap.Fanotify(), 3
		if need == procfs.Inotify {
			groups, fd = snap.Inotify(), 5
		}
		if p := groupHeldBy(t, groups, h.PID1, fd).Primary(); p.Comm != "sleep" || p.EUID != testUID {
			t.Errorf("caller %d: primary holder %+v, want sleep as uid %d", i, p.Identity, testUID)
		}
	}
}

// Callers arriving together share the walk in progress; one giving up
// does not stop it for the others.
func TestSnapshotConcurrentCallersShareOneWalk(t *testing.T) {
	s := newTestScanner()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Snapshot(cancelled, procfs.AllMarks); err == nil {
		t.Fatal("a caller whose context ended got a snapshot")
	}
	snaps := make(chan *Snapshot, 4)
	for range cap(snaps) {
		go func() {
			snap, err := s.Snapshot(context.Background(), procfs.AllMarks)
			if err != nil {
				t.Error(err)
			}
			snaps <- snap
		}()
	}
	first := <-snaps
	for range cap(snaps) - 1 {
		if snap := <-snaps; snap != first || snap == nil {
			t.Fatal("concurrent callers got different snapshots")
		}
	}
}

// Without the right to read other users' fds the snapshot says it misses
// them, and stays complete only in what it could read.
func TestSnapshotUnprivilegedIsNotVisible(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		nobody := uint32(65534)
		fanotifytest.RunChild(t, &nobody, "env")
		return
	}
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Visible || snap.Complete {
		t.Fatalf("as uid %d: visible %v, complete %v; want false, false", os.Geteuid(), snap.Visible, snap.Complete)
	}
}

func TestSnapshotOverBudgetIsIncomplete(t *testing.T) {
	logged := &countingHandler{}
	s := NewScanner(procfs.NewFS(procfs.DefaultRoot), time.Nanosecond, KeptMarks, slog.New(logged))
	snap, err := s.Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.TimedOut || snap.Complete || logged.warnings == 0 {
		t.Errorf("over budget: timed out %v, complete %v, %d warnings; want true, false, 1",
			snap.TimedOut, snap.Complete, logged.warnings)
	}
}

type countingHandler struct {
	slog.Handler
	warnings int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.warnings++
	}
	return nil
}

func TestSnapshotReadsIdentitiesOnDemand(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	a := groupHeldBy(t, snap.Fanotify(), h.PID1, 3)
	for _, x := range a.Holders {
		if x.Comm != "" || x.UserNS != 0 {
			t.Fatalf("holder %d read before any query asked for it: %+v", x.PID, x)
		}
	}
	// Concurrent queries share one read of each part, and read either
	// part while the other is read.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range a.Holders {
				_ = a.Holder(i, Owner|Details).Comm
			}
		})
		wg.Go(func() {
			snap.ReadOwners()
			_ = a.Holders[0].EUID
		})
		wg.Go(func() {
			_ = a.Holder(0, Details).Cgroup
		})
		wg.Go(func() {
			for _, g := range snap.Fanotify() {
				for _, x := range g.Holders {
					_ = x.PID
				}
			}
		})
	}
	wg.Wait()
	for _, x := range a.Holders {
		if x.Comm != "sleep" || x.EUID != testUID || x.UserNS != InitialUserNS || x.MntNS == 0 || x.Cgroup == "" {
			t.Errorf("holder %d after Holder: %+v", x.PID, x)
		}
	}
}

func TestSnapshotChargesNothingForExitedHolder(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	walk, err := procfs.NewFS(procfs.DefaultRoot).WalkNotifyFDs(context.Background(), procfs.AllMarks, KeptMarks, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A holder that exits between the walk and the identity read: a pid
	// that no process has.
	var gone procfs.NotifyFD
	for _, fd := range walk.FDs {
		if fd.PID == h.PID1 && fd.Subsystem == procfs.SubsystemInotify {
			gone = fd
		}
	}
	gone.PID = 1 << 30
	walk.FDs = append(walk.FDs, gone)
	snap := newSnapshot(procfs.NewFS(procfs.DefaultRoot), &onceLog{Logger: slog.New(slog.DiscardHandler)}, walk, time.Now(), nil, processesOf(walk))
	g := groupHeldBy(t, snap.Inotify(), gone.PID, gone.FD)
	if g.Primary().Comm != "" || g.Charge() != (Charge{}) {
		t.Errorf("exited holder: %+v charged %+v", g.Primary(), g.Charge())
	}
	for c := range snap.Direct() {
		if c == (Charge{}) {
			t.Error("the exited holder's instance is charged")
		}
	}
	if snap.Direct()[Charge{UserNS: InitialUserNS, UID: testUID}].Instances == 0 {
		t.Error("the live holders' instances are not charged")
	}
}

// pathOfFile takes a snapshot after prev and returns the path of the
// inode mark that group pid:3 holds on inode ino; "(no mark)" when none.
func pathOfFile(t *testing.T, prev *Snapshot, pid int, ino uint64) (*Snapshot, string) {
	t.Helper()
	fs := procfs.NewFS(procfs.DefaultRoot)
	walk, err := fs.WalkNotifyFDs(context.Background(), procfs.AllMarks, KeptMarks, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := newSnapshot(fs, &onceLog{Logger: slog.New(slog.DiscardHandler)}, walk, time.Now(), prev, processesOf(walk))
	g := groupHeldBy(t, snap.Fanotify(), pid, 3)
	for _, m := range slices.Collect(g.Info.All()) {
		if m.Kind == procfs.MarkInode && m.Inode == ino {
			return snap, markPath(snap, Holder{process: &process{Identity: procfs.Identity{PID: pid}}, FD: 3}, m)
		}
	}
	return snap, "(no mark)"
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestMarkPathsReusedWhileTheyNameTheInode(t *testing.T) {
	h := fanotifytest.HoldKnownObjects(t, testUID)
	file := h.Files[0]
	ino := inodeOf(t, file)
	snap, got := pathOfFile(t, nil, h.PID1, ino)
	if got != file {
		t.Fatalf("path %q, want %q", got, file)
	}
	// Another name of the same inode, which decoding never gives: seen
	// again only if the next snapshot reuses it.
	alias := "/proc/self/root" + file
	for key, p := range snap.paths.handles {
		if p == file {
			snap.paths.handles[key] = alias
		}
	}
	snap, got = pathOfFile(t, snap, h.PID1, ino)
	if got != alias {
		t.Errorf("unchanged file: path %q, want the previous snapshot's %q", got, alias)
	}

	renamed := file + ".renamed"
	if err := os.Rename(file, renamed); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(renamed, file)
	snap, got = pathOfFile(t, snap, h.PID1, ino)
	if got != renamed {
		t.Errorf("renamed file: path %q, want %q", got, renamed)
	}

	if err := os.Remove(renamed); err != nil {
		t.Fatal(err)
	}
	// The mark goes with the inode once nothing else holds it.
	if _, got = pathOfFile(t, snap, h.PID1, ino); got == renamed {
		t.Errorf("deleted file: still at %q", got)
	}
}
