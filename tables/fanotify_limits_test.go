package tables

import (
	"bufio"
	"context"
	"errors"
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

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// otherUID is a uid no other process on the test host uses.
const otherUID = 54321

// generateLimits runs fanotify_limits with a fresh Env, so that no earlier
// snapshot is reused.
func generateLimits(t *testing.T, constraints map[string][]Constraint) []namedRow {
	t.Helper()
	return generateFresh(t, fanotifyLimits, constraints)
}

// generateFresh runs a table with a fresh Env.
func generateFresh(t *testing.T, newTable func(*Env) *Table, constraints map[string][]Constraint) []namedRow {
	t.Helper()
	env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer env.Close()
	tbl, q := newTable(env), NewQueryContext(constraints, nil)
	rows, err := tbl.Generate(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return tbl.Named(slices.Values(rows), q)
}

func limitRowFor(t *testing.T, rows []namedRow, l procfs.Limit, userNS uint64, uid uint32) namedRow {
	t.Helper()
	for _, r := range rows {
		if r["subsystem"] == l.Subsystem && r["name"] == l.Name && r["user_ns"] == strconv.FormatUint(userNS, 10) && r["uid"] == strconv.FormatUint(uint64(uid), 10) && r["group_id"] == "" {
			return r
		}
	}
	t.Fatalf("no %s row for uid %d in user ns %d", l.Sysctl(), uid, userNS)
	return nil
}

// checkRow compares the named columns of a row.
func checkRow(t *testing.T, what string, row namedRow, want map[string]string) {
	t.Helper()
	for col, w := range want {
		if row[col] != w {
			t.Errorf("%s: %s = %q, want %q (row %v)", what, col, row[col], w, row)
		}
	}
}

func ownUserNS(t *testing.T) uint64 {
	t.Helper()
	ns, err := procfs.NewFS("/proc").NamespaceInode(os.Getpid(), "user")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// notifyObjects creates fanotify groups and inotify instances and adds
// marks and watches to them; everything is closed at the end of the test.
type notifyObjects struct {
	t                  *testing.T
	fanotify, inotify  []int
	marks, watches     int
	markPaths, wdPaths []string
}

func newNotifyObjects(t *testing.T, markPaths, watchPaths []string) *notifyObjects {
	o := &notifyObjects{t: t, markPaths: markPaths, wdPaths: watchPaths}
	t.Cleanup(func() {
		for _, fd := range append(o.fanotify, o.inotify...) {
			unix.Close(fd)
		}
	})
	return o
}

// newGroup creates one fanotify group; FAN_REPORT_FID lets it work inside a
// user namespace, where only inode marks are allowed.
func (o *notifyObjects) newGroup() error {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_REPORT_FID, unix.O_RDONLY)
	if err == nil {
		o.fanotify = append(o.fanotify, fd)
	}
	return err
}

// addMark marks the next path in the first group.
func (o *notifyObjects) addMark() error {
	err := unix.FanotifyMark(o.fanotify[0], unix.FAN_MARK_ADD, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, o.markPaths[o.marks])
	if err == nil {
		o.marks++
	}
	return err
}

func (o *notifyObjects) newInstance() error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err == nil {
		o.inotify = append(o.inotify, fd)
	}
	return err
}

// addWatch watches the next path in the first instance.
func (o *notifyObjects) addWatch() error {
	_, err := unix.InotifyAddWatch(o.inotify[0], o.wdPaths[o.watches], unix.IN_CREATE)
	if err == nil {
		o.watches++
	}
	return err
}

// reach grows the objects to the given counts, failing the test on error.
func (o *notifyObjects) reach(groups, marks, instances, watches int) {
	o.t.Helper()
	steps := []struct {
		have func() int
		want int
		add  func() error
	}{
		{func() int { return len(o.fanotify) }, groups, o.newGroup},
		{func() int { return o.marks }, marks, o.addMark},
		{func() int { return len(o.inotify) }, instances, o.newInstance},
		{func() int { return o.watches }, watches, o.addWatch},
	}
	for _, s := range steps {
		for s.have() < s.want {
			if err := s.add(); err != nil {
				o.t.Fatalf("creating object %d of %d: %v", s.have()+1, s.want, err)
			}
		}
	}
}

func makeFiles(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(paths[i], nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// setOwnUserLimits lowers this user namespace's /proc/sys/user limits. It
// refuses to run in the initial namespace, where they are the host's.
func setOwnUserLimits(t *testing.T, limits map[string]int) {
	t.Helper()
	if ownUserNS(t) == fanotify.InitialUserNS {
		t.Fatal("refusing to lower limits of the initial user namespace")
	}
	for file, v := range limits {
		if err := os.WriteFile("/proc/sys/user/"+file, []byte(strconv.Itoa(v)), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// Inside a user namespace with lowered limits: warning at 80%, critical at
// 90%, and at the limit used == limit, headroom 0, and the next call fails
// the way the kernel says it does.
func TestFanotifyLimitsInUserNamespaceUpToTheLimit(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, "unshare", "-U", "-r")
		return
	}
	setOwnUserLimits(t, map[string]int{"max_fanotify_marks": 20, "max_fanotify_groups": 5, "max_inotify_watches": 10, "max_inotify_instances": 4})
	files := makeFiles(t, 21)
	objs := newNotifyObjects(t, files, files)
	ns := ownUserNS(t)
	userLimits := []procfs.Limit{procfs.FanotifyGroups, procfs.FanotifyMarks, procfs.InotifyInstances, procfs.InotifyWatches}

	objs.reach(4, 16, 3, 8) // 80%, 80%, 75%, 80%
	rows := generateLimits(t, nil)
	for _, l := range userLimits {
		checkRow(t, "at 75-80%", limitRowFor(t, rows, l, ns, 0), map[string]string{"risk": "warning", "risk_reason": "usage", "source": "userns"})
	}

	objs.reach(4, 18, 3, 9) // 90% of marks and watches
	rows = generateLimits(t, nil)
	checkRow(t, "18/20 marks", limitRowFor(t, rows, procfs.FanotifyMarks, ns, 0), map[string]string{
		"used": "18", "limit_value": "20", "headroom": "2", "utilization": "90.00", "risk": "critical", "risk_reason": "usage",
		"sysctl": "user.max_fanotify_marks", "recommended": "64", "attribution": "exact",
		"remediation": "inside the user namespace, as its root: sysctl -w user.max_fanotify_marks=64",
	})
	checkRow(t, "9/10 watches", limitRowFor(t, rows, procfs.InotifyWatches, ns, 0), map[string]string{"used": "9", "risk": "critical"})

	objs.reach(5, 20, 4, 10)
	rows = generateLimits(t, nil)
	for l, limit := range map[procfs.Limit]string{procfs.FanotifyGroups: "5", procfs.FanotifyMarks: "20", procfs.InotifyInstances: "4", procfs.InotifyWatches: "10"} {
		checkRow(t, "at the limit", limitRowFor(t, rows, l, ns, 0), map[string]string{"used": limit, "limit_value": limit, "headroom": "0", "utilization": "100.00", "risk": "critical"})
	}
	for what, c := range map[string]struct {
		add  func() error
		want error
	}{
		"6th fanotify group":   {objs.newGroup, unix.EMFILE},
		"21st fanotify mark":   {objs.addMark, unix.ENOSPC},
		"5th inotify instance": {objs.newInstance, unix.EMFILE},
		"11th inotify watch":   {objs.addWatch, unix.ENOSPC},
	} {
		if err := c.add(); !errors.Is(err, c.want) {
			t.Errorf("%s beyond the limit: %v, want %v", what, err, c.want)
		}
	}
}

// From the initial namespace, usage made in a namespace owned by another
// uid shows under that uid, and under the namespace's root with a limit
// nobody outside can read.
func TestFanotifyLimitsChargedToNamespaceOwner(t *testing.T) {
	if fanotifytest.IsChild(t) {
		holdUsageUntilEOF(t)
		return
	}
	cmd, childNS := holdUsageAsOtherUID(t, "unshare", "-U", "-r")
	checkHolderCharges(t, cmd.Process.Pid, childNS)

	rows := generateLimits(t, nil)
	for l, used := range map[procfs.Limit]string{procfs.FanotifyGroups: "2", procfs.FanotifyMarks: "4", procfs.InotifyInstances: "3", procfs.InotifyWatches: "7"} {
		checkRow(t, "namespace owner", limitRowFor(t, rows, l, fanotify.InitialUserNS, otherUID), map[string]string{
			"used": used, "source": "sysctl", "risk": "ok", "attribution": "exact", "scan_complete": "1",
		})
		checkRow(t, "namespace root", limitRowFor(t, rows, l, childNS, 0), map[string]string{
			"used": used, "source": "userns", "limit_value": "", "headroom": "", "risk": "unknown", "risk_reason": "no_access",
		})
	}
	// Pushdown: uid narrows the rows, and is re-checked by osqueryd anyway.
	for _, r := range generateLimits(t, equals("uid", strconv.Itoa(otherUID))) {
		if r["uid"] != strconv.Itoa(otherUID) {
			t.Errorf("uid = %d returned %v", otherUID, r)
		}
	}
}

// A namespace B created by root of a namespace A that uid otherUID owns:
// usage made in B is charged to B's root, to A's root (B's owner as A sees
// it), and to otherUID in the initial namespace. No holder lives in A, only
// the unshare that waits for B's process.
func TestFanotifyLimitsNestedNamespacesChargedAtEveryLevel(t *testing.T) {
	if fanotifytest.IsChild(t) {
		holdUsageUntilEOF(t)
		return
	}
	cmd, inner := holdUsageAsOtherUID(t, "unshare", "-U", "-r", "--fork", "unshare", "-U", "-r")
	outer, err := procfs.NewFS("/proc").NamespaceInode(cmd.Process.Pid, "user")
	if err != nil {
		t.Fatal(err)
	}
	if outer == inner || outer == fanotify.InitialUserNS {
		t.Fatalf("outer unshare in user ns %d, inner %d: want a namespace between the initial one and the holder's", outer, inner)
	}
	holder := waitChild(t, cmd.Process.Pid)
	checkHolderCharges(t, holder, inner)

	rows := generateLimits(t, nil)
	for l, used := range map[procfs.Limit]string{procfs.FanotifyGroups: "2", procfs.FanotifyMarks: "4", procfs.InotifyInstances: "3", procfs.InotifyWatches: "7"} {
		for _, level := range []fanotify.Charge{{UserNS: inner, UID: 0}, {UserNS: outer, UID: 0}, {UserNS: fanotify.InitialUserNS, UID: otherUID}} {
			checkRow(t, fmt.Sprintf("level %+v", level), limitRowFor(t, rows, l, level.UserNS, level.UID), map[string]string{"used": used, "attribution": "exact"})
		}
	}
	for _, r := range rows {
		if ns := r["user_ns"]; (ns == strconv.FormatUint(inner, 10) || ns == strconv.FormatUint(outer, 10)) && r["uid"] != "0" {
			t.Errorf("a uid other than root charged in the container's namespaces: %v", r)
		}
	}
}

// With no process left in the middle namespace its uid_map cannot be read:
// the charge there keeps the owner's host uid and is rated estimated, while
// the levels below and above stay exact.
func TestFanotifyLimitsNamespaceWithoutProcessIsEstimated(t *testing.T) {
	if fanotifytest.IsChild(t) {
		holdUsageUntilEOF(t)
		return
	}
	cmd, inner := holdUsageAsOtherUID(t, "unshare", "-U", "-r", "unshare", "-U", "-r")
	outer := fanotifytest.ParentUserNS(t, cmd.Process.Pid)
	rows := generateLimits(t, equals("name", "max_user_groups"))
	for level, want := range map[fanotify.Charge]string{
		{UserNS: inner, UID: 0}: "exact", {UserNS: outer, UID: otherUID}: "estimated", {UserNS: fanotify.InitialUserNS, UID: otherUID}: "exact",
	} {
		checkRow(t, fmt.Sprintf("level %+v", level), limitRowFor(t, rows, procfs.FanotifyGroups, level.UserNS, level.UID), map[string]string{"used": "2", "attribution": want})
	}
}

// holdUsageAsOtherUID starts this test's child half (holdUsageUntilEOF)
// through wrapper as otherUID, and returns it once it holds its usage, with
// the user namespace it holds it in.
func holdUsageAsOtherUID(t *testing.T, wrapper ...string) (*exec.Cmd, uint64) {
	t.Helper()
	uid := uint32(otherUID)
	cmd := fanotifytest.ChildCommand(t, &uid, wrapper...)
	return cmd, startReady(t, cmd)
}

// startReady starts cmd, a test's child half, and returns the number it
// writes once ready (see waitReady); closing its stdin at cleanup ends it.
func startReady(t *testing.T, cmd *exec.Cmd) uint64 {
	t.Helper()
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	return waitReady(t, stdout)
}

// waitChild returns the only child of pid (unshare --fork's).
func waitChild(t *testing.T, pid int) int {
	t.Helper()
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(children))
	if len(fields) != 1 {
		t.Fatalf("pid %d has children %q, want one", pid, fields)
	}
	child, err := strconv.Atoi(fields[0])
	if err != nil {
		t.Fatal(err)
	}
	return child
}

// checkHolderCharges checks that fanotify_groups and inotify_instances
// charge pid's groups and instances to root of userNS, the uid the kernel
// charges there, while uid keeps the holder's host uid.
func checkHolderCharges(t *testing.T, pid int, userNS uint64) {
	t.Helper()
	for _, c := range []struct {
		table func(*Env) *Table
		want  int
	}{{fanotifyGroups, 2}, {inotifyInstances, 3}} {
		rows := generateFresh(t, c.table, equals("pid", strconv.Itoa(pid)))
		if len(rows) != c.want {
			t.Errorf("%d rows held by pid %d, want %d: %v", len(rows), pid, c.want, rows)
		}
		for _, r := range rows {
			checkRow(t, "holder in a child namespace", r, map[string]string{
				"uid": strconv.Itoa(otherUID), "charged_uid": "0", "charged_user_ns": strconv.FormatUint(userNS, 10),
			})
		}
	}
}

// holdUsageUntilEOF creates 2 fanotify groups with 4 marks and 3 inotify
// instances with 7 watches, reports its user namespace and waits.
func holdUsageUntilEOF(t *testing.T) {
	dirs := []string{"/", "/etc", "/usr", "/var", "/usr/bin", "/usr/lib", "/tmp"}
	objs := newNotifyObjects(t, dirs, dirs)
	objs.reach(2, 3, 3, 7)
	// One mark in the second group: counts add up over groups.
	if err := unix.FanotifyMark(objs.fanotify[1], unix.FAN_MARK_ADD, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, "/"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ready %d\n", ownUserNS(t))
	io.Copy(io.Discard, os.Stdin)
}

func waitReady(t *testing.T, stdout io.Reader) uint64 {
	t.Helper()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
			ns, err := strconv.ParseUint(rest, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			go io.Copy(io.Discard, stdout)
			return ns
		}
	}
	t.Fatalf("child ended before it was ready: %v", sc.Err())
	return 0
}

// An idle host raises no alarm: root's rows in the initial namespace are
// ok, carry the sysctl values, and every limit has one.
func TestFanotifyLimitsIdleHost(t *testing.T) {
	if ownUserNS(t) != fanotify.InitialUserNS || os.Geteuid() != 0 {
		t.Skip("needs root in the initial user namespace")
	}
	files := makeFiles(t, 2)
	newNotifyObjects(t, files, files).reach(1, 2, 1, 2)
	sysctls, err := procfs.NewFS("/proc").ReadSysctls()
	if err != nil {
		t.Fatal(err)
	}
	release, _ := procfs.NewFS("/proc").KernelRelease()
	rows := generateLimits(t, nil)
	for _, lv := range sysctls.Initial {
		r := limitRowFor(t, rows, lv.Limit, fanotify.InitialUserNS, 0)
		want := map[string]string{
			"limit_value": strconv.FormatInt(lv.Value, 10), "sysctl": lv.Sysctl(), "source": "sysctl", "scope": lv.Scope,
			"risk": "ok", "risk_reason": "", "remediation": "", "scan_complete": "1", "kernel_version": release,
		}
		if lv.Scope == procfs.ScopeQueue {
			want["used"], want["headroom"], want["utilization"] = "", "", ""
		} else if used, _ := strconv.Atoi(r["used"]); used < 1 {
			t.Errorf("%s: used %q does not count this test's objects", lv.Sysctl(), r["used"])
		}
		checkRow(t, "idle host", r, want)
	}
}

// Marking every mount is projected for root: a namespace's reachable
// mounts (those a mount mark can be put on, see TestMountPointsReachable)
// count until root's group marking the most mounts marks them.
func TestFanotifyLimitsProjectionCountsUnmarkedMounts(t *testing.T) {
	if ownUserNS(t) != fanotify.InitialUserNS || os.Geteuid() != 0 {
		t.Skip("needs root in the initial user namespace")
	}
	ns := newPrivateNamespace(t)
	infos, err := procfs.NewFS("/proc").Mounts(ns.pid)
	if err != nil {
		t.Fatal(err)
	}
	mounts, reachable := int64(len(infos)), int64(0)
	for _, ok := range procfs.Reachable(infos) {
		if ok {
			reachable++
		}
	}
	env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	unmarked := func() int64 {
		t.Helper()
		for _, m := range mountsPerNamespace(t, NewEnv(config.Default(), env.Log)) {
			if m.MntNS == ns.mntNS {
				if m.Mounts != mounts {
					t.Errorf("namespace has %d mounts, mountinfo %d lines", m.Mounts, mounts)
				}
				return m.Unmarked
			}
		}
		t.Fatal("private namespace not listed")
		return 0
	}
	if got := unmarked(); got != reachable {
		t.Errorf("before any mark: %d unmarked, want all %d reachable", got, reachable)
	}
	// /proc/PID/root reaches the namespace's own root mount. A group whose
	// marks root's budget does not pay for leaves it to be marked.
	markRoot := func(flags uint) {
		t.Helper()
		fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|flags, unix.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, fmt.Sprintf("/proc/%d/root/", ns.pid)); err != nil {
			t.Fatal(err)
		}
	}
	markRoot(unix.FAN_UNLIMITED_MARKS)
	if got := unmarked(); got != reachable {
		t.Errorf("after an uncharged mark of its root mount: %d unmarked, want all %d reachable", got, reachable)
	}
	markRoot(0)
	if got := unmarked(); got != reachable-1 {
		t.Errorf("after marking its root mount: %d unmarked, want %d", got, reachable-1)
	}
	// Another group of root's marking another mount: the collector, the
	// group with the most mount marks, still has as many left to mark.
	other, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(other)
	if err := unix.FanotifyMark(other, unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, fmt.Sprintf("/proc/%d/root/proc", ns.pid)); err != nil {
		t.Fatal(err)
	}
	if got := unmarked(); got != reachable-1 {
		t.Errorf("after another group marked another mount: %d unmarked, want %d", got, reachable-1)
	}
	r := limitRowFor(t, generateLimits(t, nil), procfs.FanotifyMarks, fanotify.InitialUserNS, 0)
	used, _ := strconv.ParseInt(r["used"], 10, 64)
	projected, _ := strconv.ParseInt(r["projected_need"], 10, 64)
	if projected < used+reachable-1 {
		t.Errorf("projected_need %d < used %d + this namespace's %d unmarked mounts", projected, used, reachable-1)
	}
}

// Without access to other processes, low usage is unknown, not ok.
func TestFanotifyLimitsUnprivilegedIsUnknown(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		uid := uint32(otherUID)
		fanotifytest.RunChild(t, &uid, "env")
		return
	}
	rows := generateLimits(t, equals("name", "max_user_marks", "max_queued_events"))
	checkRow(t, "root's marks, unprivileged", limitRowFor(t, rows, procfs.FanotifyMarks, fanotify.InitialUserNS, 0), map[string]string{
		"risk": "unknown", "risk_reason": "no_access", "scan_complete": "0",
	})
	for _, r := range rows {
		if r["name"] != "max_user_marks" && r["name"] != "max_queued_events" {
			t.Errorf("name pushdown returned %s", r["name"])
		}
	}
}

// Processes the walk cannot even list make low usage unknown, since the
// walk cannot notice what it misses: other users' under hidepid, for a user
// who is not root, and the host's from a child pid namespace, even for root.
// Each runs with a /proc of its own, in a private mount namespace.
func TestFanotifyLimitsUnlistedProcessesAreUnknown(t *testing.T) {
	if fanotifytest.IsChild(t) {
		rows := generateLimits(t, equals("name", "max_user_marks"))
		checkRow(t, os.Getenv("LIMITS_TEST_CASE"), limitRowFor(t, rows, procfs.FanotifyMarks, fanotify.InitialUserNS, 0),
			map[string]string{"risk": "unknown", "risk_reason": "no_access"})
		return
	}
	for name, unshare := range map[string][]string{
		"hidepid=2, another user": {"-m", "sh", "-c", fmt.Sprintf(
			`mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid %d --regid %d --clear-groups "$@"`, otherUID, otherUID), "sh"},
		"child pid namespace, root": {"-m", "-p", "-f", "--mount-proc"},
	} {
		cmd := fanotifytest.ChildCommand(t, nil, append([]string{"unshare"}, unshare...)...)
		cmd.Env = append(cmd.Env, "LIMITS_TEST_CASE="+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
	}
}

// A child pid namespace that kept the host's proc sees every process, but
// kcmp takes the pids of its own namespace, not the proc's: the usage is
// rated, and estimated.
func TestFanotifyLimitsFromAChildPidNamespaceWithTheHostsProc(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, "unshare", "--pid", "--fork")
		return
	}
	row := limitRowFor(t, generateLimits(t, equals("name", "max_user_marks")), procfs.FanotifyMarks, fanotify.InitialUserNS, 0)
	if row["risk"] == "unknown" || row["attribution"] != "estimated" {
		t.Errorf("root's max_user_marks: risk %q (%s), attribution %q; want rated and estimated", row["risk"], row["risk_reason"], row["attribution"])
	}
}

func TestHidesPids(t *testing.T) {
	for opts, want := range map[string]bool{
		"rw":                      false,
		"rw,hidepid=0":            false,
		"rw,hidepid=off":          false,
		"rw,hidepid=2,gid=4":      true,
		"rw,hidepid=invisible":    true,
		"rw,subset=pid,hidepid=1": true,
	} {
		if got := hidesPids(opts); got != want {
			t.Errorf("hidesPids(%q) = %v, want %v", opts, got, want)
		}
	}
}

// Per-group rows of kernels before 5.13 name their group; unknown values
// are NULL.
func TestLimitRowRendering(t *testing.T) {
	sysctls, err := procfs.NewFS(filepath.Join("..", "fanotify", "procfs", "testdata", "sysctl", "5.10-old")).ReadSysctls()
	if err != nil {
		t.Fatal(err)
	}
	as := fanotify.AssessLimits(fanotify.LimitsInput{
		Sysctls:    sysctls,
		Groups:     []fanotify.GroupMarks{{ID: "812:5", Charge: fanotify.Charge{UserNS: fanotify.InitialUserNS, UID: 0}, Marks: 8193}},
		Visible:    true,
		Complete:   true,
		WarningPct: 75, CriticalPct: 90,
	})
	var group namedRow
	for _, a := range as {
		if a.GroupID != "" {
			group = limitRow(a, "5.10.0")
		}
	}
	checkRow(t, "per-group row", group, map[string]string{
		"name": "max_user_marks", "scope": "group", "group_id": "812:5", "sysctl": "", "source": "kernel_default",
		"limit_value": "8193", "used": "8193", "headroom": "0", "risk": "critical", "projected_need": "", "kernel_version": "5.10.0",
	})
	if !strings.Contains(group["remediation"], "8192 marks per group") {
		t.Errorf("remediation %q", group["remediation"])
	}
}

// One generate over the live host: a fresh walk of /proc, the sysctls and
// every mount namespace.
func BenchmarkFanotifyLimitsHost(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for b.Loop() {
		env := NewEnv(config.Default(), log)
		if _, err := fanotifyLimits(env).Generate(context.Background(), NewQueryContext(nil, nil)); err != nil {
			b.Fatal(err)
		}
		env.Close()
	}
}

// On a kernel without kcmp a group held through several fds may count once
// per fd: every rated usage is then estimated. The child runs with kcmp
// refused as such a kernel does.
func TestFanotifyLimitsEstimatedWithoutKcmp(t *testing.T) {
	if !knownObjectsWithoutKcmp(t) {
		return
	}
	rated := 0
	for _, r := range generateLimits(t, nil) {
		if r["used"] == "" {
			continue
		}
		rated++
		if r["attribution"] != fanotify.AttributionEstimated {
			t.Errorf("%s of uid %s: attribution %q without kcmp, want estimated", r["name"], r["uid"], r["attribution"])
		}
	}
	if rated == 0 {
		t.Error("no limit rated with its usage")
	}
}
