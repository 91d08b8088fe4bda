package fanotify

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

func TestMarkPathsResolvesEveryMarkAndClosesMountFDs(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for i := range 5 {
		f := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	in := fanotifytest.Inotify(t, files...)
	pid := fanotifytest.Hold(t, nil, in)
	fanotifytest.Close(in)
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	g := groupHeldBy(t, snap.Inotify(), pid, 3)

	before := openFDs(t)
	got := snap.MarkPaths(g.Primary(), slices.Collect(g.Info.All()))
	if after := openFDs(t); after != before {
		t.Errorf("%d fds open after MarkPaths, %d before: a mount directory stayed open", after, before)
	}
	for i, m := range slices.Collect(g.Info.All()) {
		if one := markPath(snap, g.Primary(), m); one != got[i] {
			t.Errorf("mark %d: MarkPaths of the group says %q, of the mark alone %q", i, got[i], one)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, files) {
		t.Errorf("paths %q, want %q", got, files)
	}
}

// markPath is the path of one mark's object, as MarkPaths resolves it.
func markPath(snap *Snapshot, h Holder, m procfs.Mark) string {
	return snap.MarkPaths(h, []procfs.Mark{m})[0]
}

// In a child pid namespace that kept the initial one's proc, os.Getpid()
// names another process there (pid 1 or 2 of the host, in the initial
// mount namespace): handles decode through the mounts of this process's
// own namespace, where the host's tmpfs was moved to another directory.
func TestMarkPathsThroughOwnMountsInAChildPidNamespace(t *testing.T) {
	if fanotifytest.IsChild(t) {
		hostMount := os.Getenv("PATHS_TEST_MOUNT")
		moved := filepath.Join(filepath.Dir(hostMount), "moved")
		if err := unix.Mount(hostMount, moved, "", unix.MS_MOVE, ""); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(moved, "watched")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		in := fanotifytest.Inotify(t, file)
		defer fanotifytest.Close(in)
		snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
		if err != nil {
			t.Fatal(err)
		}
		self, err := procfs.NewFS(procfs.DefaultRoot).SelfPID()
		if err != nil || self == os.Getpid() {
			t.Fatalf("pid %d in /proc (%v), %d here: not a child pid namespace with the host's proc", self, err, os.Getpid())
		}
		g := groupHeldBy(t, snap.Inotify(), self, in)
		if got := snap.MarkPaths(g.Primary(), slices.Collect(g.Info.All())); !slices.Equal(got, []string{file}) {
			t.Errorf("paths %q, want [%q]", got, file)
		}
		return
	}
	dir := t.TempDir()
	hostMount, moved := filepath.Join(dir, "host"), filepath.Join(dir, "moved")
	for _, d := range []string{hostMount, moved} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("paths", hostMount, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(hostMount, unix.MNT_DETACH)
	// sh stays pid 1, so that this binary is pid 2 there: kthreadd here.
	cmd := fanotifytest.ChildCommand(t, nil, "unshare", "--pid", "--fork", "--mount", "sh", "-c", `"$@"; exit $?`, "sh")
	cmd.Env = append(cmd.Env, "PATHS_TEST_MOUNT="+hostMount)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// Root of a user namespace decodes the handle of a directory watched on a
// tmpfs mounted there: O_DIRECTORY, without CAP_DAC_READ_SEARCH in the
// initial user namespace.
func TestMarkPathsOfADirectoryInAUserNamespace(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, "unshare", "--user", "--map-root-user", "--mount")
		return
	}
	dir := t.TempDir()
	if err := unix.Mount("paths", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	watched := filepath.Join(dir, "watched")
	if err := os.Mkdir(watched, 0o755); err != nil {
		t.Fatal(err)
	}
	in := fanotifytest.Inotify(t, watched)
	defer fanotifytest.Close(in)
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	g := groupHeldBy(t, snap.Inotify(), os.Getpid(), in)
	if got := snap.MarkPaths(g.Primary(), slices.Collect(g.Info.All())); !slices.Equal(got, []string{watched}) {
		t.Errorf("paths %q, want [%q]", got, watched)
	}
}

// A file this process's namespace reaches only through a bind mount of
// another directory (its decode reads back as "/") has the path the
// holder's namespace, which still mounts the whole filesystem, gives it.
func TestMarkPathsOutsideTheOnlyBindMountHere(t *testing.T) {
	whole := mountTmpfs(t)
	secret, bind := filepath.Join(whole, "b", "secret"), filepath.Join(t.TempDir(), "bindA")
	for _, d := range []string{filepath.Join(whole, "a"), filepath.Dir(secret), bind} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(secret, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(filepath.Join(whole, "a"), bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })
	in := fanotifytest.Inotify(t, secret)
	pid := fanotifytest.HoldCommand(t, exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "1000"), nil, in)
	fanotifytest.Close(in)
	fanotifytest.WaitExec(t, pid, "sleep")
	if err := unix.Unmount(whole, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	g := groupHeldBy(t, snap.Inotify(), pid, 3)
	if got := snap.MarkPaths(g.Primary(), slices.Collect(g.Info.All())); !slices.Equal(got, []string{secret}) {
		t.Errorf("paths %q, want [%q] as the holder's namespace has it", got, secret)
	}
}

// A file this process's namespace does not reach has, for each holder, the
// path its own namespace gives it: two namespaces mount the filesystem at
// different places.
func TestMarkPathsPerHolderNamespace(t *testing.T) {
	whole := mountTmpfs(t)
	file := filepath.Join(whole, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	views := []string{filepath.Join(t.TempDir(), "viewA"), filepath.Join(t.TempDir(), "viewB")}
	for _, v := range views {
		if err := os.Mkdir(v, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(whole, v, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
	}
	var pids []int
	for i := range views {
		in := fanotifytest.Inotify(t, file)
		pids = append(pids, fanotifytest.HoldCommand(t, exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "1000"), nil, in))
		fanotifytest.Close(in)
		fanotifytest.WaitExec(t, pids[i], "sleep")
	}
	// Each namespace keeps its own view only; this one keeps none.
	for i, pid := range pids {
		other := views[1-i]
		if out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-m", "umount", "-l", whole, other).CombinedOutput(); err != nil {
			t.Fatalf("umount in pid %d: %v: %s", pid, err, out)
		}
	}
	for _, m := range append(views, whole) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := newTestScanner().Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	for i, pid := range pids {
		g := groupHeldBy(t, snap.Inotify(), pid, 3)
		want := filepath.Join(views[i], "f")
		if got := snap.MarkPaths(g.Primary(), slices.Collect(g.Info.All())); !slices.Equal(got, []string{want}) {
			t.Errorf("pid %d: paths %q, want [%q]", pid, got, want)
		}
	}
}
