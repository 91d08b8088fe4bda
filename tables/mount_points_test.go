package tables

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

func testEnv(root string) *Env {
	proc, log := procfs.NewFS(root), slog.New(slog.NewTextHandler(io.Discard, nil))
	return &Env{Proc: proc, Config: config.Default(), Log: log, Usage: fanotify.NewScanner(proc, 10*time.Second, fanotify.KeptMarks, log)}
}

func equals(col string, vals ...string) map[string][]Constraint {
	var cs []Constraint
	for _, v := range vals {
		cs = append(cs, Constraint{Op: OpEquals, Expr: v})
	}
	return map[string][]Constraint{col: cs}
}

func generateMounts(t testing.TB, env *Env, constraints map[string][]Constraint) []namedRow {
	t.Helper()
	tbl, q := mountPoints(env), NewQueryContext(constraints, nil)
	rows, err := tbl.Generate(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return tbl.Named(slices.Values(rows), q)
}

// privateNamespace is a mount namespace held by a sleeping child.
type privateNamespace struct {
	pid   int
	mntNS uint64
}

// newPrivateNamespace starts `unshare -m --propagation private sleep`, so
// that nothing mounted inside reaches the host. Its mounts vanish with it.
func newPrivateNamespace(t testing.TB) privateNamespace {
	t.Helper()
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sleep", "600")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	// unshare execs sleep only after making every mount private. The
	// deadline only stops a hang: a loaded machine takes seconds.
	deadline := time.Now().Add(30 * time.Second)
	for {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			t.Fatal(err)
		}
		if string(comm) == "sleep\n" {
			break
		}
		if time.Now().After(deadline) {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			cmd.Process.Kill()
			cmd.Wait() // stderr is complete once Wait returns
			t.Fatalf("unshare did not exec sleep: stat %s, stderr %q", stat, stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ns, err := procfs.NewFS("/proc").NamespaceInode(pid, "mnt")
	if err != nil {
		t.Fatal(err)
	}
	if own, _ := procfs.NewFS("/proc").NamespaceInode(os.Getpid(), "mnt"); own == ns {
		t.Fatal("child shares our mount namespace")
	}
	return privateNamespace{pid: pid, mntNS: ns}
}

// run calls fn on an OS thread that has joined the namespace. The thread
// stays locked, so it is discarded when fn returns.
func (ns privateNamespace) run(t testing.TB, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// setns into a mount namespace needs a thread of its own fs struct.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare CLONE_FS: %w", err)
			return
		}
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", ns.pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// wantMount is what a row must show for one mount the test created.
type wantMount struct{ root, fsType, source, propagation string }

// populate mounts a tmpfs on dir inside ns, then binds >1000 directories
// and names that need escaping in mountinfo. It returns the expected rows'
// fields by displayed path.
func (ns privateNamespace) populate(t testing.TB, dir string, binds int) map[string]wantMount {
	t.Helper()
	const source = `test src\with space`
	hostile := []string{"with space", "with\ttab", "with\nnewline", "bad\xffbyte", `back\slash`}
	want := map[string]wantMount{dir: {"/", "tmpfs", source, "private"}}
	bindWant := func(propagation string) wantMount {
		return wantMount{"/src dir", "tmpfs", source, propagation}
	}
	ns.run(t, func() error {
		if err := unix.Mount(source, dir, "tmpfs", 0, "size=1m"); err != nil {
			return fmt.Errorf("mount tmpfs: %w", err)
		}
		src := filepath.Join(dir, "src dir")
		bind := func(from, name string) error {
			target := filepath.Join(dir, name)
			if err := os.Mkdir(target, 0o755); err != nil {
				return err
			}
			if err := unix.Mount(from, target, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind %q: %w", target, err)
			}
			return nil
		}
		if err := os.Mkdir(src, 0o755); err != nil {
			return err
		}
		for i := range binds {
			name := fmt.Sprintf("b%04d", i)
			if err := bind(src, name); err != nil {
				return err
			}
			want[filepath.Join(dir, name)] = bindWant("private")
		}
		for _, name := range hostile {
			if err := bind(src, name); err != nil {
				return err
			}
			want[procfs.DisplayPath(filepath.Join(dir, name))] = bindWant("private")
		}
		// A shared mount, and a slave of it that is itself shared.
		shared, slave := filepath.Join(dir, "shared"), filepath.Join(dir, "slave")
		if err := bind(src, "shared"); err != nil {
			return err
		}
		if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
			return fmt.Errorf("make shared: %w", err)
		}
		if err := bind(shared, "slave"); err != nil {
			return err
		}
		for _, flags := range []uintptr{unix.MS_SLAVE, unix.MS_SHARED} {
			if err := unix.Mount("", slave, "", flags, ""); err != nil {
				return fmt.Errorf("propagation of %s: %w", slave, err)
			}
		}
		return nil
	})
	// Peer group IDs are the kernel's to choose: read them back.
	mounts, err := procfs.NewFS("/proc").Mounts(ns.pid)
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]string{}
	for _, m := range mounts {
		groups[m.Mountpoint] = m.Optional
	}
	sharedOpt := groups[filepath.Join(dir, "shared")]
	peer, ok := strings.CutPrefix(sharedOpt, "shared:")
	if !ok {
		t.Fatalf("shared mount shows %q", sharedOpt)
	}
	want[filepath.Join(dir, "shared")] = bindWant(sharedOpt)
	slaveOpt := groups[filepath.Join(dir, "slave")]
	if !strings.HasPrefix(slaveOpt, "shared:") || !strings.HasSuffix(slaveOpt, " master:"+peer) {
		t.Fatalf("slave mount shows %q, want shared:N master:%s", slaveOpt, peer)
	}
	want[filepath.Join(dir, "slave")] = bindWant(slaveOpt)
	return want
}

// device returns the major:minor of path as seen in the namespace.
func (ns privateNamespace) device(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(ns.path(path), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
}

// rowsUnder returns the rows of ns whose path is dir or below it.
func rowsUnder(rows []namedRow, ns uint64, dir string) map[string]namedRow {
	out := map[string]namedRow{}
	for _, r := range rows {
		if r["mnt_ns"] == strconv.FormatUint(ns, 10) && (r["path"] == dir || strings.HasPrefix(r["path"], dir+"/")) {
			out[r["path"]] = r
		}
	}
	return out
}

func checkCreatedMounts(t *testing.T, got map[string]namedRow, want map[string]wantMount, ns privateNamespace, dir string) {
	t.Helper()
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
		t.Fatalf("paths under %s:\n got %q\nwant %q", dir, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	device := ns.device(t, dir)
	for path, w := range want {
		r := got[path]
		if r["pid"] != strconv.Itoa(ns.pid) || r["device"] != device || r["root"] != w.root ||
			r["fs_type"] != w.fsType || r["source"] != w.source || r["propagation"] != w.propagation {
			t.Errorf("row %q = %v\nwant pid %d device %s %+v", path, r, ns.pid, device, w)
		}
		for _, col := range markColumns { // nothing marks a new private tmpfs
			if v, ok := r[col]; !ok || v != "0" {
				t.Errorf("row %q: %s = %q, want 0", path, col, v)
			}
		}
	}
}

func TestMountPointsPrivateNamespace(t *testing.T) {
	env := testEnv("/proc")
	ns := newPrivateNamespace(t)
	dir := t.TempDir()
	want := ns.populate(t, dir, 1000)
	if len(want) < 1000 {
		t.Fatalf("created only %d mounts", len(want))
	}
	nsText := strconv.FormatUint(ns.mntNS, 10)

	t.Run("mnt_ns", func(t *testing.T) {
		rows := generateMounts(t, env, equals("mnt_ns", nsText))
		for _, r := range rows {
			if r["mnt_ns"] != nsText {
				t.Fatalf("row of namespace %s under mnt_ns = %s", r["mnt_ns"], nsText)
			}
		}
		checkCreatedMounts(t, rowsUnder(rows, ns.mntNS, dir), want, ns, dir)
	})
	t.Run("pid", func(t *testing.T) {
		rows := generateMounts(t, env, equals("pid", strconv.Itoa(ns.pid)))
		checkCreatedMounts(t, rowsUnder(rows, ns.mntNS, dir), want, ns, dir)
	})
	t.Run("unconstrained", func(t *testing.T) {
		rows := generateMounts(t, env, nil)
		checkCreatedMounts(t, rowsUnder(rows, ns.mntNS, dir), want, ns, dir)
		// The host never sees the mounts of a private namespace.
		own, err := env.Proc.NamespaceInode(os.Getpid(), "mnt")
		if err != nil {
			t.Fatal(err)
		}
		if leaked := rowsUnder(rows, own, dir); len(leaked) > 0 {
			t.Errorf("host namespace shows %d mounts created in the private one", len(leaked))
		}
	})
	t.Run("other namespace", func(t *testing.T) {
		own, err := env.Proc.NamespaceInode(os.Getpid(), "mnt")
		if err != nil {
			t.Fatal(err)
		}
		rows := generateMounts(t, env, equals("mnt_ns", strconv.FormatUint(own, 10)))
		if len(rows) == 0 {
			t.Fatal("no rows for our own namespace")
		}
		for _, r := range rows {
			if r["mnt_ns"] != strconv.FormatUint(own, 10) {
				t.Fatalf("row of namespace %s under mnt_ns = %d", r["mnt_ns"], own)
			}
		}
	})
}

// Every namespace any process is in shows up, read through its lowest pid.
func TestMountPointsEveryNamespace(t *testing.T) {
	env := testEnv("/proc")
	ns := newPrivateNamespace(t)
	before := namespacesByGlob(t)
	rows := generateMounts(t, env, nil)
	after := namespacesByGlob(t)

	reader := map[string]string{} // mnt_ns -> pid column
	for _, r := range rows {
		if p, seen := reader[r["mnt_ns"]]; seen && p != r["pid"] {
			t.Fatalf("namespace %s read through pids %s and %s", r["mnt_ns"], p, r["pid"])
		}
		reader[r["mnt_ns"]] = r["pid"]
	}
	for inode, pids := range before {
		if _, ok := reader[inode]; !ok && after[inode] != nil {
			t.Errorf("namespace %s of pids %v is missing", inode, pids)
		}
	}
	if got := reader[strconv.FormatUint(ns.mntNS, 10)]; got != strconv.Itoa(ns.pid) {
		t.Errorf("private namespace read through pid %q, want %d", got, ns.pid)
	}
	// The root's parent is the namespace's first mount, never listed.
	ids, rootParent := map[string]bool{}, ""
	for _, r := range rows {
		if r["mnt_ns"] != strconv.FormatUint(ns.mntNS, 10) {
			continue
		}
		ids[r["mount_id"]] = true
		if r["path"] == "/" {
			rootParent = r["parent_id"]
		}
	}
	if rootParent == "" || ids[rootParent] {
		t.Errorf("the parent of the private namespace's root is %q, listed: %v", rootParent, ids[rootParent])
	}
}

// A thread that unshared its mount namespace is in one no process is in:
// it shows up too, read through the thread, with the mounts only that
// thread sees.
func TestMountPointsNamespaceOfAThread(t *testing.T) {
	dir := t.TempDir()
	tid, mntNS := fanotifytest.MountNamespaceThread(t, dir)
	ns := strconv.FormatUint(mntNS, 10)
	for _, constraints := range []map[string][]Constraint{nil, equals("mnt_ns", ns)} {
		rows := generateMounts(t, testEnv("/proc"), constraints)
		if !slices.ContainsFunc(rows, func(r namedRow) bool {
			return r["mnt_ns"] == ns && r["pid"] == strconv.Itoa(tid) && r["path"] == dir && r["fs_type"] == "tmpfs"
		}) {
			t.Errorf("constraints %v: no row of the tmpfs on %s in thread %d's namespace %s", constraints, dir, tid, ns)
		}
	}
}

// A mount covered by another is out of reach, and so is what is below it:
// a fanotify group marking the mount point of every mount of a namespace
// holds a mark on each reachable mount and on no other, and the projection
// counts these.
func TestMountPointsReachable(t *testing.T) {
	ns := newPrivateNamespace(t)
	dir := t.TempDir()
	ns.run(t, func() error {
		// x, with in below it, then mounted over; a/b, then a mounted on.
		for _, sub := range []string{"x", "x/in", "x", "a/b", "a"} {
			target := filepath.Join(dir, sub)
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", target, "tmpfs", 0, "size=1m"); err != nil {
				return fmt.Errorf("mount %s: %w", target, err)
			}
		}
		// Two stacked on the root, each with an in of its own; /.. is
		// the top of the stack.
		for range 2 {
			if err := unix.Mount("tmpfs", "/", "tmpfs", 0, "size=1m"); err != nil {
				return fmt.Errorf("mount on /: %w", err)
			}
			if err := os.Mkdir("/../in", 0o755); err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", "/../in", "tmpfs", 0, "size=1m"); err != nil {
				return fmt.Errorf("mount on /../in: %w", err)
			}
		}
		return nil
	})
	env := testEnv("/proc")
	perNS := mountsPerNamespace(t, env)
	rows := generateMounts(t, env, equals("mnt_ns", strconv.FormatUint(ns.mntNS, 10)))
	reachable := map[string]bool{}
	for _, r := range rows {
		if r["reachable"] == "1" {
			reachable[r["mount_id"]] = true
		}
	}
	if marked := markEveryMountPoint(t, ns, rows); !maps.Equal(marked, reachable) {
		t.Errorf("marking every mount point marked mounts %v; reachable: %v", slices.Sorted(maps.Keys(marked)), slices.Sorted(maps.Keys(reachable)))
	}
	var mine []string // the reachable mounts of those this test made, by path
	for _, r := range rows {
		if rel, ok := strings.CutPrefix(r["path"], dir+"/"); ok && r["reachable"] == "1" {
			mine = append(mine, rel)
		}
	}
	if want := []string{"a", "x"}; !slices.Equal(slices.Sorted(slices.Values(mine)), want) {
		t.Errorf("reachable mounts under %s: %q, want %q", dir, mine, want)
	}
	for _, m := range perNS {
		if m.MntNS == ns.mntNS && m.Unmarked != int64(len(reachable)) {
			t.Errorf("projection counts %d mounts to mark, want the %d reachable ones", m.Unmarked, len(reachable))
		}
	}
}

// mountsPerNamespace is MountsPerNamespace over a fresh snapshot of env.
func mountsPerNamespace(t *testing.T, env *Env) []NamespaceMounts {
	t.Helper()
	snap, err := env.Usage.Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	perNS, err := MountsPerNamespace(context.Background(), env, snap)
	if err != nil {
		t.Fatal(err)
	}
	return perNS
}

// markEveryMountPoint puts a mount mark, from the root of ns's process, on
// the mount point of every row, and on it through the top of what is
// stacked on that root (/..), and returns the mount IDs the group then
// marks. (Mount points under a covering mount no longer exist.)
func markEveryMountPoint(t *testing.T, ns privateNamespace, rows []namedRow) map[string]bool {
	t.Helper()
	marked := map[string]bool{}
	// Joining the namespace sets a thread's root on top of what is stacked
	// on the namespace's root, where the process that rows were read
	// through is not: the thread takes that process's root.
	root, err := unix.Open(fmt.Sprintf("/proc/%d/root", ns.pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	ns.run(t, func() error {
		if err := unix.Fchdir(root); err != nil {
			return err
		}
		if err := unix.Chroot("."); err != nil {
			return err
		}
		fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, r := range rows {
			for _, path := range []string{r["path"], "/.." + r["path"]} {
				err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, path)
				if err != nil && err != unix.ENOENT {
					return fmt.Errorf("mark %s: %w", path, err)
				}
			}
		}
		fdinfo, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
		if err != nil {
			return err
		}
		for line := range strings.Lines(string(fdinfo)) {
			var id uint64
			if _, err := fmt.Sscanf(line, "fanotify mnt_id:%x", &id); err == nil {
				marked[strconv.FormatUint(id, 10)] = true
			}
		}
		return nil
	})
	return marked
}

// chrootDirEnv tells the child half of TestMountPointsChrootedLowestPid
// where to mount and chroot.
const chrootDirEnv = "MOUNT_POINTS_CHROOT_DIR"

// A namespace whose lowest pid is chrooted is read through a process that
// sees all of it: the kernel lists in a chrooted process's mountinfo only
// the mounts under its root. Both mount_points and the projection of
// fanotify_limits count them.
func TestMountPointsChrootedLowestPid(t *testing.T) {
	if fanotifytest.IsChild(t) {
		chrootUntilEOF(t, os.Getenv(chrootDirEnv))
		return
	}
	dir := t.TempDir()
	cmd := fanotifytest.ChildCommand(t, nil, "unshare", "-m", "--propagation", "private")
	cmd.Env = append(cmd.Env, chrootDirEnv+"="+dir)
	startReady(t, cmd)
	chrooted := cmd.Process.Pid
	whole := fanotifytest.HoldCommand(t, exec.Command("nsenter", "-t", strconv.Itoa(chrooted), "-m", "sleep", "1000"), nil)
	fanotifytest.WaitExec(t, whole, "sleep")
	if whole < chrooted {
		t.Skipf("pids wrapped: the whole view's pid %d is below the chrooted one's %d", whole, chrooted)
	}
	mntNS, err := procfs.NewFS("/proc").NamespaceInode(chrooted, "mnt")
	if err != nil {
		t.Fatal(err)
	}
	mountinfo, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", whole))
	if err != nil {
		t.Fatal(err)
	}
	mounts := strings.Count(string(mountinfo), "\n")
	ns := strconv.FormatUint(mntNS, 10)
	for _, constraints := range []map[string][]Constraint{nil, equals("mnt_ns", ns)} {
		var paths []string
		for _, r := range generateMounts(t, testEnv("/proc"), constraints) {
			if r["mnt_ns"] != ns {
				continue
			}
			if r["pid"] != strconv.Itoa(whole) {
				t.Fatalf("constraints %v: namespace read through pid %s, want %d (chrooted: %d)", constraints, r["pid"], whole, chrooted)
			}
			paths = append(paths, r["path"])
		}
		if len(paths) != mounts || !slices.Contains(paths, filepath.Join(dir, "other")) || !slices.Contains(paths, filepath.Join(dir, "root", "x")) {
			t.Errorf("constraints %v: %d rows %q, want the %d mounts of pid %d's mountinfo", constraints, len(paths), paths, mounts, whole)
		}
	}
	perNS := mountsPerNamespace(t, testEnv("/proc"))
	i := slices.IndexFunc(perNS, func(m NamespaceMounts) bool { return m.MntNS == mntNS })
	if i < 0 || perNS[i].Mounts != int64(mounts) {
		t.Errorf("projection counts mounts %+v, want %d in namespace %d", perNS, mounts, mntNS)
	}
}

// chrootUntilEOF mounts tmpfs on dir, on dir/root/x and on dir/other,
// chroots into dir/root, where it sees only x, says it is ready and waits.
func chrootUntilEOF(t *testing.T, dir string) {
	for _, sub := range []string{"", "root/x", "other"} {
		target := filepath.Join(dir, sub)
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", target, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Chroot(filepath.Join(dir, "root")); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready 0")
	io.Copy(io.Discard, os.Stdin)
}

// namespacesByGlob maps mount namespace inodes to their pids, found
// independently of procfs.FS through /proc/*/ns/mnt.
func namespacesByGlob(t *testing.T) map[string][]int {
	t.Helper()
	links, err := filepath.Glob("/proc/[0-9]*/ns/mnt")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int{}
	for _, l := range links {
		target, err := os.Readlink(l)
		if err != nil {
			continue // exited meanwhile
		}
		pid, _ := strconv.Atoi(strings.Split(l, "/")[2])
		inode := strings.TrimSuffix(strings.TrimPrefix(target, "mnt:["), "]")
		out[inode] = append(out[inode], pid)
	}
	return out
}

// A pid constraint shows that process in the pid column, even when a lower
// pid shares its namespace, and IN lists give one view per pid.
func TestMountPointsPidConstraint(t *testing.T) {
	env := testEnv("/proc")
	ns := newPrivateNamespace(t)
	self := os.Getpid()
	own, err := env.Proc.NamespaceInode(self, "mnt")
	if err != nil {
		t.Fatal(err)
	}
	rows := generateMounts(t, env, equals("pid", strconv.Itoa(self), strconv.Itoa(ns.pid)))
	perPid := map[string]string{}
	for _, r := range rows {
		perPid[r["pid"]] = r["mnt_ns"]
	}
	want := map[string]string{
		strconv.Itoa(self):   strconv.FormatUint(own, 10),
		strconv.Itoa(ns.pid): strconv.FormatUint(ns.mntNS, 10),
	}
	if !maps.Equal(perPid, want) {
		t.Errorf("pid -> mnt_ns = %v, want %v", perPid, want)
	}
	// Both namespaces filtered away.
	cons := equals("pid", strconv.Itoa(self))
	cons["mnt_ns"] = []Constraint{{Op: OpEquals, Expr: strconv.FormatUint(ns.mntNS, 10)}}
	if rows := generateMounts(t, env, cons); len(rows) != 0 {
		t.Errorf("pid of one namespace with mnt_ns of another gave %d rows", len(rows))
	}
}

func TestMountPointsExitedProcess(t *testing.T) {
	env := testEnv("/proc")
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	fanotifytest.WaitZombie(t, cmd.Process.Pid)
	if rows := generateMounts(t, env, equals("pid", pid)); len(rows) != 0 {
		t.Errorf("zombie %s gave %d rows", pid, len(rows))
	}
	cmd.Wait()
	if rows := generateMounts(t, env, equals("pid", pid)); len(rows) != 0 {
		t.Errorf("reaped %s gave %d rows", pid, len(rows))
	}
}

// When a namespace's lowest pid exits between the walk and the read, the
// next process of that namespace is used.
func TestMountPointsFallsBackToNextPid(t *testing.T) {
	root := t.TempDir()
	mountinfo := "1 0 0:2 / / rw - tmpfs none rw\n"
	for pid, proc := range map[string]struct{ ns, mountinfo string }{
		"5": {"mnt:[100]", ""}, // exited after its ns link and root were read
		"6": {"mnt:[100]", mountinfo},
		"7": {"", ""}, // exited before
	} {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if proc.ns != "" {
			if err := os.Symlink(proc.ns, filepath.Join(dir, "ns", "mnt")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/", filepath.Join(dir, "root")); err != nil {
				t.Fatal(err)
			}
		}
		if proc.mountinfo != "" {
			if err := os.WriteFile(filepath.Join(dir, "mountinfo"), []byte(proc.mountinfo), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	rows := generateMounts(t, testEnv(root), nil)
	if len(rows) != 1 || rows[0]["pid"] != "6" || rows[0]["mnt_ns"] != "100" || rows[0]["path"] != "/" {
		t.Errorf("rows = %v, want the root mount of namespace 100 read through pid 6", rows)
	}
}

// A process that may not be inspected (another user's, when the extension
// does not run as root) is left out instead of failing the query.
func TestMountPointsSkipsUnreadableProcesses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged uid")
	}
	env := testEnv("/proc")
	own, err := env.Proc.NamespaceInode(os.Getpid(), "mnt")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		rows []namedRow
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The uid change is this thread's alone (a raw setresuid, not Go's
		// all-threads one); the thread stays locked and is discarded.
		runtime.LockOSThread()
		// unix.Setresuid is Go's all-threads setresuid: use the raw call.
		if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 65534, ^uintptr(0)); errno != 0 {
			done <- result{err: errno}
			return
		}
		tbl, q := mountPoints(env), NewQueryContext(nil, nil)
		rows, err := tbl.Generate(context.Background(), q)
		done <- result{tbl.Named(slices.Values(rows), q), err}
	}()
	res := <-done
	if res.err != nil {
		t.Fatalf("Generate as uid 65534: %v", res.err)
	}
	// pid 1 is root's: unreadable, while our own process stays readable.
	self := strconv.Itoa(os.Getpid())
	for _, r := range res.rows {
		if r["pid"] == "1" {
			t.Fatal("pid 1 was read as uid 65534")
		}
		if r["pid"] != self || r["mnt_ns"] != strconv.FormatUint(own, 10) {
			t.Fatalf("unexpected view %s/%s as uid 65534", r["mnt_ns"], r["pid"])
		}
	}
	if len(res.rows) == 0 {
		t.Error("our own namespace is missing")
	}
}

// BenchmarkMountPointsHost scans every namespace of this host.
func BenchmarkMountPointsHost(b *testing.B) {
	env := testEnv("/proc")
	for b.Loop() {
		if _, err := mountPoints(env).Generate(context.Background(), NewQueryContext(nil, nil)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMountPointsNamespace1000 lists one namespace of ~1000 mounts.
func BenchmarkMountPointsNamespace1000(b *testing.B) {
	env := testEnv("/proc")
	ns := newPrivateNamespace(b)
	ns.populate(b, b.TempDir(), 1000)
	q := NewQueryContext(equals("mnt_ns", strconv.FormatUint(ns.mntNS, 10)), nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mountPoints(env).Generate(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}
