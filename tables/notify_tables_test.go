package tables

import (
	"bytes"
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

// notifyTestUID is the euid of the processes holding the known objects.
const notifyTestUID = 3123456790

func notifyRunner(t testing.TB) *Runner { return notifyRunnerWith(t, config.Default()) }

func notifyRunnerWith(t testing.TB, cfg config.Config) *Runner {
	env := NewEnv(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(env.Close)
	return NewRunner(All(env), time.Minute, 4, env.Log)
}

// query runs a generate; cols nil reads every column.
func query(t testing.TB, r *Runner, table string, constraints map[string][]Constraint, cols []string) []namedRow {
	t.Helper()
	q := NewQueryContext(constraints, cols)
	rows, err := r.Generate(context.Background(), table, q)
	if err != nil {
		t.Fatal(err)
	}
	tbl, _ := r.Table(table)
	return tbl.Named(slices.Values(rows), q)
}

// namedRow is a row by column name, as osquery's protocol carries it.
type namedRow = map[string]string

// rowsWhere keeps the rows whose col is val.
func rowsWhere(rows []namedRow, col, val string) []namedRow {
	var out []namedRow
	for _, r := range rows {
		if r[col] == val {
			out = append(out, r)
		}
	}
	return out
}

func sumCol(t testing.TB, rows []namedRow, col string) int {
	t.Helper()
	n := 0
	for _, r := range rows {
		v, err := strconv.Atoi(r[col])
		if err != nil {
			t.Fatalf("%s = %q: %v", col, r[col], err)
		}
		n += v
	}
	return n
}

func id(pid, fd int) string { return strconv.Itoa(pid) + ":" + strconv.Itoa(fd) }

func TestFanotifyGroupsCountsKnownGroups(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	rows := query(t, notifyRunner(t), "fanotify_groups", nil, nil)
	mine := rowsWhere(rows, "charged_uid", strconv.Itoa(notifyTestUID))
	if len(mine) != 4 {
		t.Fatalf("%d groups charged to uid %d, want 4: %v", len(mine), notifyTestUID, mine)
	}
	want := map[string]namedRow{
		id(k.PID1, 3): {"holders": "3", "pid": strconv.Itoa(k.PID1), "process": "sleep", "marks": "5", "inode_marks": "3",
			"mount_marks": "1", "fs_marks": "1", "mntns_marks": "0", "class": "notif", "unlimited_marks": "0",
			"group_flags_names": "FAN_CLASS_NOTIF|FAN_CLOEXEC|FAN_REPORT_FID"},
		id(k.PID2, 5): {"holders": "1", "marks": "1", "inode_marks": "1", "unlimited_marks": "1",
			"group_flags_names": "FAN_CLASS_NOTIF|FAN_CLOEXEC|FAN_UNLIMITED_MARKS|FAN_REPORT_FID"},
		id(k.PID2, 6): {"holders": "1", "marks": "1", "mntns_marks": "1", "inode_marks": "0"},
		id(k.PID1, 6): {"holders": "1", "marks": "0"},
	}
	for gid, cols := range want {
		got := rowsWhere(mine, "group_id", gid)
		if len(got) != 1 {
			t.Errorf("group %s: %d rows", gid, len(got))
			continue
		}
		for col, v := range cols {
			if got[0][col] != v {
				t.Errorf("group %s: %s = %q, want %q", gid, col, got[0][col], v)
			}
		}
	}
}

// A query constrained to the second holder of a shared group still sees the
// group under the lowest-pid holder's id, and not as its primary holder.
func TestFanotifyMarksPidConstraintKeepsGroupIdentity(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	r := notifyRunner(t)
	all := rowsWhere(query(t, r, "fanotify_marks", nil, nil), "group_id", id(k.PID1, 3))
	if len(all) != 15 || sumCol(t, all, "primary_holder") != 5 {
		t.Fatalf("group A: %d rows, SUM(primary_holder) %d; want 15 (5 marks x 3 fds) and 5",
			len(all), sumCol(t, all, "primary_holder"))
	}
	second := query(t, r, "fanotify_marks", equals("pid", strconv.Itoa(k.PID2)), nil)
	a := rowsWhere(second, "group_id", id(k.PID1, 3))
	if len(a) != 5 || sumCol(t, a, "primary_holder") != 0 {
		t.Errorf("pid %d: %d rows of group A with SUM(primary_holder) %d, want 5 and 0", k.PID2, len(a), sumCol(t, a, "primary_holder"))
	}
	for _, row := range second {
		if row["pid"] != strconv.Itoa(k.PID2) {
			t.Fatalf("pid constraint returned a row of pid %s", row["pid"])
		}
	}
	types := map[string]int{}
	for _, row := range rowsWhere(all, "pid", strconv.Itoa(k.PID1)) {
		if row["fd"] == "3" {
			types[row["mark_type"]]++
		}
	}
	if types["inode"] != 3 || types["mount"] != 1 || types["filesystem"] != 1 {
		t.Errorf("mark types of group A: %v", types)
	}
	none := rowsWhere(query(t, r, "fanotify_marks", equals("group_id", id(k.PID1, 6)), nil), "group_id", id(k.PID1, 6))
	if len(none) != 1 || none[0]["mark_type"] != "none" {
		t.Errorf("group without marks: %v, want one row of type none", none)
	}
}

// A query that reads only holder columns (GROUP BY pid) gets the same rows
// as one that reads the marks, projected.
func TestFanotifyMarksHolderColumnsOnly(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	r := notifyRunner(t)
	holder := []string{"pid", "fd", "group_id", "primary_holder"}
	tally := func(rows []namedRow) map[string]int {
		n := map[string]int{}
		for _, row := range rows {
			if row["group_id"] == id(k.PID1, 3) {
				n[row["pid"]+"/"+row["fd"]+"/"+row["primary_holder"]]++
			}
		}
		return n
	}
	want := tally(query(t, r, "fanotify_marks", nil, nil))
	got := tally(query(t, r, "fanotify_marks", nil, holder))
	if !maps.Equal(got, want) || len(want) != 3 {
		t.Errorf("holder columns only: %v, want %v (3 fds of group A, 5 rows each)", got, want)
	}
}

// A query that shows no group's identity takes each fd as a group of its
// own: a shared group's holders get the same rows as when the query shows
// group_id and the fds are matched to their open file.
func TestFanotifyMarksWithoutGroupIdentity(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	r := notifyRunner(t)
	tally := func(cols ...string) map[string]int {
		n := map[string]int{}
		for _, row := range query(t, r, "fanotify_marks", map[string][]Constraint{"pid": {
			{OpEquals, strconv.Itoa(k.PID1)}, {OpEquals, strconv.Itoa(k.PID2)}}}, cols) {
			n[row["pid"]+"/"+row["fd"]+"/"+row["mark_type"]+"/"+row["mask"]]++
		}
		return n
	}
	want := tally("pid", "fd", "mark_type", "mask", "group_id")
	got := tally("pid", "fd", "mark_type", "mask")
	if !maps.Equal(got, want) || len(want) < 10 {
		t.Errorf("without group_id: %v, want %v", got, want)
	}
}

// knownObjectsWithoutKcmp runs t's child half with the known objects held
// and kcmp refused, as on a kernel without it, and reports whether this
// process is that child, which goes on with t.
func knownObjectsWithoutKcmp(t *testing.T) bool {
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, "env")
		return false
	}
	fanotifytest.HoldKnownObjects(t, notifyTestUID)
	fanotifytest.RefuseSyscall(t, unix.SYS_KCMP)
	return true
}

// Only a query that shows which group an fd holds matches fds to open
// files: run where kcmp is refused, it alone logs so.
func TestOnlyGroupIdentityCallsKcmp(t *testing.T) {
	if !knownObjectsWithoutKcmp(t) {
		return
	}
	var logged bytes.Buffer
	env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(&logged, nil)))
	defer env.Close()
	r := NewRunner(All(env), time.Minute, 4, env.Log)
	for _, q := range []struct {
		table string
		cols  []string
		kcmp  bool
	}{
		{"fanotify_marks", []string{}, false},
		{"inotify_watches", []string{"pid", "fd", "wd", "mask"}, false},
		{"fanotify_marks", []string{"pid", "fd", "group_id"}, true},
	} {
		logged.Reset()
		query(t, r, q.table, nil, q.cols)
		if called := strings.Contains(logged.String(), "kcmp"); called != q.kcmp {
			t.Errorf("%s reading %q: kcmp called %v, want %v (log %q)", q.table, q.cols, called, q.kcmp, logged.String())
		}
	}
}

// A query that reads only mark columns gets them in their columns, with
// the holder's columns left empty: each known group's marks by type.
func TestFanotifyMarksMarkColumnsOnly(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	r := notifyRunner(t)
	types := func(rows []namedRow) map[string]int {
		n := map[string]int{}
		for _, row := range rows {
			n[row["mark_type"]+"/"+row["inode"]+"/"+row["pid"]+"/"+row["group_id"]]++
		}
		return n
	}
	pid := equals("pid", strconv.Itoa(k.PID1))
	want := map[string]int{}
	for kind, count := range types(query(t, r, "fanotify_marks", pid, nil)) {
		kind = strings.Join(strings.Split(kind, "/")[:2], "/") + "//"
		want[kind] += count
	}
	got := types(query(t, r, "fanotify_marks", pid, []string{"mark_type", "inode"}))
	if !maps.Equal(got, want) || want["none///"] != 1 || want["mount///"] != 2 {
		t.Errorf("mark columns only: %v, want %v (group A through fds 3 and 4: 5 marks each; group D: none)", got, want)
	}
}

func TestFanotifyMarksPathOnlyWhenUsed(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	r := notifyRunner(t)
	ignoreOnly := func(cols []string) namedRow {
		rows := query(t, r, "fanotify_marks", equals("group_id", id(k.PID1, 3)), cols)
		for _, row := range rows {
			if row["pid"] == strconv.Itoa(k.PID1) && row["fd"] == "3" && row["mask"] == "0" {
				return row
			}
		}
		t.Fatalf("no ignore-only mark among %v", rows)
		return nil
	}
	row := ignoreOnly(nil)
	if row["path"] != k.Files[2] || row["ignored_mask_names"] != "FAN_OPEN" ||
		row["mark_flags_names"] != "FAN_MARK_IGNORED_SURV_MODIFY" || row["mark_type"] != "inode" {
		t.Errorf("ignore-only mark: %v", row)
	}
	if row := ignoreOnly([]string{"mask", "pid", "fd"}); row["path"] != "" {
		t.Errorf("path %q resolved though the query does not read it", row["path"])
	}
}

func TestInotifyTablesCountKnownInstances(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	r := notifyRunner(t)
	instances := rowsWhere(query(t, r, "inotify_instances", nil, nil), "charged_uid", strconv.Itoa(notifyTestUID))
	if len(instances) != 2 {
		t.Fatalf("%d instances charged to uid %d, want 2", len(instances), notifyTestUID)
	}
	for _, want := range []struct {
		id      string
		watches string
	}{{id(k.PID1, 5), "2"}, {id(k.PID2, 4), "0"}} {
		got := rowsWhere(instances, "instance_id", want.id)
		if len(got) != 1 || got[0]["watches"] != want.watches || got[0]["holders"] != "1" {
			t.Errorf("instance %s: %v, want %s watches", want.id, got, want.watches)
		}
	}
	watches := query(t, r, "inotify_watches", equals("pid", strconv.Itoa(k.PID1)), nil)
	paths := map[string]bool{}
	for _, w := range rowsWhere(watches, "instance_id", id(k.PID1, 5)) {
		paths[w["path"]] = true
		if w["primary_holder"] != "1" || w["mask_names"] != "IN_MODIFY" {
			t.Errorf("watch %v", w)
		}
	}
	if len(paths) != 2 || !paths[k.Dir] || !paths[k.Files[0]] {
		t.Errorf("watched paths %v, want %s and %s", paths, k.Dir, k.Files[0])
	}
	if empty := rowsWhere(watches, "instance_id", id(k.PID2, 4)); len(empty) != 0 {
		t.Errorf("an instance without watches has rows: %v", empty)
	}
}

// A per-mark query over max_rows fails, naming the cap and the summary
// table, before it builds a row; at the cap it returns every row. PID1 holds
// group A (5 marks) through two fds and group D (no marks, one row).
func TestPerMarkTablesRowCap(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	pid := equals("pid", strconv.Itoa(k.PID1))
	for _, c := range []struct {
		table, summary string
		rows           int
	}{{"fanotify_marks", "fanotify_groups", 11}, {"inotify_watches", "inotify_instances", 2}} {
		cfg := config.Default()
		cfg.MaxRows = c.rows - 1
		_, err := notifyRunnerWith(t, cfg).Generate(context.Background(), c.table, NewQueryContext(pid, nil))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%s: the query would return %d rows, over max_rows (%d)", c.table, c.rows, c.rows-1)) ||
			!strings.Contains(err.Error(), c.summary) {
			t.Errorf("%s capped at %d rows: error %v, want the row count, max_rows and %s", c.table, c.rows-1, err, c.summary)
		}
		cfg.MaxRows = c.rows
		if got := query(t, notifyRunnerWith(t, cfg), c.table, pid, nil); len(got) != c.rows {
			t.Errorf("%s capped at %d rows: %d rows", c.table, c.rows, len(got))
		}
	}
}

// tmpfsWithBind mounts a tmpfs on a new directory dir in ns, with a
// directory src holding a file "file" and bind, a bind mount of src.
func (ns privateNamespace) tmpfsWithBind(t *testing.T) (dir, src, bind string) {
	t.Helper()
	dir = t.TempDir()
	src, bind = filepath.Join(dir, "src"), filepath.Join(dir, "bind")
	ns.run(t, func() error {
		if err := unix.Mount("marks", dir, "tmpfs", 0, "size=1m"); err != nil {
			return err
		}
		for _, d := range []string{src, bind} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(src, "file"), nil, 0o600); err != nil {
			return err
		}
		return unix.Mount(src, bind, "", unix.MS_BIND, "")
	})
	return dir, src, bind
}

// path is p as seen from outside ns: paths below /proc/PID/root reach the
// namespace's mounts.
func (ns privateNamespace) path(p string) string {
	return fmt.Sprintf("/proc/%d/root%s", ns.pid, p)
}

// Marks on a private tmpfs and a bind mount of it: mount marks count per
// mount (a mark through a subdirectory reuses its mount's), superblock and
// inode marks and watches per filesystem, so they repeat on both mounts.
func TestMountPointsMarkCounts(t *testing.T) {
	ns := newPrivateNamespace(t)
	dir, src, bind := ns.tmpfsWithBind(t)
	g := fanotifytest.Fanotify(t, unix.FAN_REPORT_FID)
	fanotifytest.Mark(t, g, unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, ns.path(dir))
	fanotifytest.Mark(t, g, unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, ns.path(src)) // the same mount
	fanotifytest.Mark(t, g, unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, ns.path(bind))
	fanotifytest.Mark(t, g, unix.FAN_MARK_FILESYSTEM, unix.FAN_CLOSE_WRITE, ns.path(bind))
	fanotifytest.Mark(t, g, 0, unix.FAN_MODIFY, ns.path(filepath.Join(src, "file")))
	in := fanotifytest.Inotify(t, ns.path(src), ns.path(filepath.Join(src, "file")))
	fanotifytest.Hold(t, nil, g, g, in) // two fds of one group count once
	fanotifytest.Close(g, in)

	rows := query(t, notifyRunner(t), "mount_points", equals("mnt_ns", strconv.FormatUint(ns.mntNS, 10)), nil)
	got := rowsUnder(rows, ns.mntNS, dir)
	for _, path := range []string{dir, bind} {
		want := namedRow{"fanotify_mount_marks": "1", "fanotify_fs_marks": "1", "fanotify_inode_marks": "1", "inotify_watches": "2"}
		for col, v := range want {
			if got[path][col] != v {
				t.Errorf("%s: %s = %q, want %q", path, col, got[path][col], v)
			}
		}
	}
	if len(got) != 2 {
		t.Errorf("mounts under %s: %v", dir, got)
	}
}

// A holder in another mount namespace: paths are the ones it sees.
func TestFanotifyMarksPathsInHolderNamespace(t *testing.T) {
	ns := newPrivateNamespace(t)
	dir, src, bind := ns.tmpfsWithBind(t)
	g := fanotifytest.Fanotify(t, unix.FAN_REPORT_FID)
	fanotifytest.Mark(t, g, unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, ns.path(bind))
	fanotifytest.Mark(t, g, unix.FAN_MARK_FILESYSTEM, unix.FAN_CLOSE_WRITE, ns.path(bind))
	fanotifytest.Mark(t, g, 0, unix.FAN_MODIFY, ns.path(filepath.Join(src, "file")))
	holder := fanotifytest.HoldCommand(t, exec.Command("nsenter", "-t", strconv.Itoa(ns.pid), "-m", "sleep", "1000"), nil, g)
	fanotifytest.Close(g)
	fanotifytest.WaitExec(t, holder, "sleep")

	got := map[string]string{}
	for _, row := range query(t, notifyRunner(t), "fanotify_marks", equals("pid", strconv.Itoa(holder)), nil) {
		got[row["mark_type"]] = row["path"]
	}
	want := map[string]string{"mount": bind, "filesystem": dir, "inode": filepath.Join(src, "file")}
	if !maps.Equal(got, want) {
		t.Errorf("paths %v, want %v", got, want)
	}
}

// fakeHolder lays out /proc/PID of a process holding one fanotify fd 3
// whose fdinfo is given, below root.
func fakeHolder(t *testing.T, root string, pid int, fdinfo string) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	files := map[string]string{
		"comm":     "fake\n",
		"status":   "Name:\tfake\nUid:\t0\t0\t0\t0\n",
		"cgroup":   "0::/fake\n",
		"fdinfo/3": fdinfo,
	}
	links := map[string]string{"fd/3": "anon_inode:[fanotify]", "ns/user": "user:[4026531837]", "ns/mnt": "mnt:[4026531841]"}
	for _, sub := range []string{"fd", "fdinfo", "ns"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// An fdinfo that does not parse still shows its group, with unknown marks.
func TestFanotifyTablesUnparsableFdinfo(t *testing.T) {
	root := t.TempDir()
	fakeHolder(t, root, 4242, "pos:\t0\nfanotify flags:200 event-flags:8000\nfanotify ino:zz sdev:fe00000 mflags:0 mask:2 ignored_mask:0\n")
	env := testEnv(root)
	r := NewRunner(All(env), time.Minute, 1, env.Log)
	groups := query(t, r, "fanotify_groups", nil, nil)
	if len(groups) != 1 || groups[0]["group_id"] != "4242:3" || groups[0]["marks"] != "" || groups[0]["class"] != "" {
		t.Errorf("groups %v, want 4242:3 with NULL marks and class", groups)
	}
	marks := query(t, r, "fanotify_marks", nil, nil)
	if len(marks) != 1 || marks[0]["mark_type"] != "unknown" || marks[0]["process"] != "fake" {
		t.Errorf("marks %v, want one row of type unknown", marks)
	}
	snap, err := env.Usage.Snapshot(context.Background(), procfs.AllMarks)
	if err != nil || snap.Complete {
		t.Errorf("a snapshot with an unparsable fdinfo is complete (err %v)", err)
	}
}

// primaryOf is the primary holder of the fanotify group groupID in snap.
func primaryOf(t *testing.T, snap *fanotify.Snapshot, groupID string) fanotify.Holder {
	t.Helper()
	for _, g := range snap.Fanotify() {
		if g.ID == groupID {
			return g.Holders[0]
		}
	}
	t.Fatalf("group %s missing", groupID)
	return fanotify.Holder{}
}

func TestFanotifyMarksReadIdentitiesOnlyWhenUsed(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(env.Close)
	r := NewRunner(All(env), time.Minute, 4, env.Log)
	holderOf := func(snap *fanotify.Snapshot) fanotify.Holder { return primaryOf(t, snap, id(min(k.PID1, k.PID2), 3)) }
	// Queries within a second share the snapshot taken here.
	snap, err := env.Usage.Snapshot(context.Background(), procfs.AllMarks)
	if err != nil {
		t.Fatal(err)
	}
	if rows := query(t, r, "fanotify_marks", nil, []string{"pid", "fd"}); len(rows) == 0 {
		t.Fatal("no marks")
	}
	if h := holderOf(snap); h.Comm != "" {
		t.Errorf("a query without holder identity columns read the holder's: %+v", h.Identity)
	}
	// The uid is read without the command name, namespaces and cgroup.
	group := equals("group_id", id(min(k.PID1, k.PID2), 3))
	if rows := query(t, r, "fanotify_marks", group, []string{"pid", "uid"}); len(rows) == 0 || rows[0]["uid"] != strconv.Itoa(notifyTestUID) {
		t.Errorf("uid column: %v", rows)
	}
	if h := holderOf(snap); h.EUID != notifyTestUID || h.Comm != "" || h.Cgroup != "" || h.MntNS != 0 {
		t.Errorf("a query showing the uid alone read %+v, want the uid and user namespace only", h.Identity)
	}
	rows := query(t, r, "fanotify_marks", group, []string{"pid", "process", "uid"})
	if again, _ := env.Usage.Snapshot(context.Background(), procfs.AllMarks); again != snap {
		t.Skip("the snapshot expired between the queries: machine too slow to tell")
	}
	if len(rows) == 0 || rows[0]["process"] != "sleep" || rows[0]["uid"] != strconv.Itoa(notifyTestUID) {
		t.Errorf("identity columns: %v", rows)
	}
}

// The per-group tables read the parts of the primary holder's identity
// their query shows, as the per-mark tables do.
func TestGroupTablesReadIdentitiesOnlyWhenUsed(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(env.Close)
	r := NewRunner(All(env), time.Minute, 4, env.Log)
	groupID := id(min(k.PID1, k.PID2), 3)
	primary := func(snap *fanotify.Snapshot) fanotify.Holder { return primaryOf(t, snap, groupID) }
	// Queries within a second share the snapshot taken here.
	snap, err := env.Usage.Snapshot(context.Background(), procfs.Fanotify)
	if err != nil {
		t.Fatal(err)
	}
	group := equals("group_id", groupID)
	if rows := query(t, r, "fanotify_groups", group, []string{"group_id", "marks"}); len(rows) != 1 || rows[0]["marks"] != "5" {
		t.Fatalf("marks of group %s: %v", groupID, rows)
	}
	if p := primary(snap); p.EUID != 0 || p.Comm != "" {
		t.Errorf("a query without identity columns read the primary holder's: %+v", p.Identity)
	}
	if rows := query(t, r, "fanotify_groups", group, []string{"group_id", "charged_uid"}); len(rows) != 1 || rows[0]["charged_uid"] != strconv.Itoa(notifyTestUID) {
		t.Errorf("charged_uid: %v", rows)
	}
	if p := primary(snap); p.EUID != notifyTestUID || p.Comm != "" || p.Cgroup != "" {
		t.Errorf("a query showing the charge alone read %+v, want the owner only", p.Identity)
	}
	rows := query(t, r, "fanotify_groups", group, []string{"group_id", "process"})
	if again, _ := env.Usage.Snapshot(context.Background(), procfs.Fanotify); again != snap {
		t.Skip("the snapshot expired between the queries: machine too slow to tell")
	}
	if len(rows) != 1 || rows[0]["process"] != "sleep" {
		t.Errorf("process: %v", rows)
	}
}

// A query on a fanotify table makes the kernel format no inotify fdinfo,
// and one on an inotify table no fanotify fdinfo; a query that reads no
// column of the marks (COUNT(*)) only counts them: the snapshot each leaves
// read what it needed and no more.
func TestNotifyTablesReadWhatTheyNeed(t *testing.T) {
	fanotifytest.HoldKnownObjects(t, notifyTestUID)
	count := []string{}
	for _, tc := range []struct {
		table string
		cols  []string
		read  procfs.Reads
		not   []procfs.Reads
	}{
		{"fanotify_marks", nil, procfs.Fanotify, []procfs.Reads{procfs.InotifyCounts}},
		{"fanotify_marks", count, procfs.FanotifyCounts, []procfs.Reads{procfs.Fanotify, procfs.InotifyCounts}},
		{"fanotify_marks", []string{"pid", "mask"}, procfs.Fanotify, []procfs.Reads{procfs.InotifyCounts}},
		{"fanotify_groups", nil, procfs.Fanotify, []procfs.Reads{procfs.InotifyCounts}},
		{"fanotify_groups", []string{"group_id", "marks"}, procfs.FanotifyCounts, []procfs.Reads{procfs.Fanotify, procfs.InotifyCounts}},
		{"inotify_watches", nil, procfs.Inotify, []procfs.Reads{procfs.FanotifyCounts}},
		{"inotify_watches", []string{"pid", "fd"}, procfs.InotifyCounts, []procfs.Reads{procfs.Inotify, procfs.FanotifyCounts}},
		{"inotify_instances", nil, procfs.InotifyCounts, []procfs.Reads{procfs.Inotify, procfs.FanotifyCounts}},
		{"fanotify_limits", nil, procfs.Fanotify | procfs.InotifyCounts, []procfs.Reads{procfs.Inotify}},
	} {
		env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		r := NewRunner(All(env), time.Minute, 1, env.Log)
		if rows := query(t, r, tc.table, nil, tc.cols); len(rows) == 0 {
			t.Fatalf("%s %v: no rows", tc.table, tc.cols)
		}
		// What the query read is returned as is; anything more would be
		// read now.
		snap, err := env.Usage.Snapshot(context.Background(), tc.read)
		if err != nil {
			t.Fatal(err)
		}
		for _, not := range tc.not {
			if snap.Covers(not) {
				t.Errorf("%s %v read %v too", tc.table, tc.cols, not)
			}
		}
		env.Close()
	}
}

// On a host with more marks than a snapshot keeps (none here), the per-mark
// tables and the mark counts of fanotify_groups read the marks they show
// again: the same rows as when every mark is kept.
func TestMarksPastWhatTheSnapshotKeeps(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	full := notifyRunner(t)
	env := NewEnv(config.Default(), slog.New(slog.DiscardHandler))
	t.Cleanup(env.Close)
	env.Usage = fanotify.NewScanner(env.Proc, 10*time.Second, 0, env.Log)
	bounded := NewRunner(All(env), time.Minute, 4, env.Log)
	withPath := []string{"group_id", "instance_id", "mark_type", "inode", "device", "mount_id", "mask", "ignored_mask", "wd", "path"}
	for _, q := range []struct {
		table string
		pid   int
		cols  []string
	}{
		{"fanotify_marks", k.PID2, nil},
		{"fanotify_marks", k.PID1, withPath[:1]},
		{"inotify_watches", k.PID1, nil},
		{"inotify_watches", k.PID1, withPath[1:]},
		{"fanotify_groups", k.PID2, nil},
	} {
		pid := equals("pid", strconv.Itoa(q.pid))
		want, got := query(t, full, q.table, pid, q.cols), query(t, bounded, q.table, pid, q.cols)
		if len(want) == 0 || !sameRows(got, want) {
			t.Errorf("%s WHERE pid = %d, columns %v:\n got %v\nwant %v", q.table, q.pid, q.cols, got, want)
		}
	}
}

// A per-mark table's stream yields as many rows as it announced, which
// osqueryd's protocol sends first, and the rows its generate returns: with
// the marks kept by the walk or read again (a snapshot keeping none), for
// every column set and with or without a pid constraint.
func TestStreamYieldsTheRowsItAnnounces(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	env := NewEnv(config.Default(), slog.New(slog.DiscardHandler))
	t.Cleanup(env.Close)
	env.Usage = fanotify.NewScanner(env.Proc, 10*time.Second, 0, env.Log)
	for _, r := range []*Runner{notifyRunner(t), NewRunner(All(env), time.Minute, 4, env.Log)} {
		for _, table := range []string{"fanotify_marks", "inotify_watches"} {
			for _, cols := range [][]string{nil, {}, {"pid", "mask"}, {"path"}} {
				for _, constraints := range []map[string][]Constraint{nil, equals("pid", strconv.Itoa(k.PID1))} {
					q := NewQueryContext(constraints, cols)
					rows, err := r.Stream(context.Background(), table, q)
					if err != nil {
						t.Fatal(err)
					}
					tbl, _ := r.Table(table)
					streamed := tbl.Named(rows.All, q)
					generated, err := r.Generate(context.Background(), table, q)
					if err != nil {
						t.Fatal(err)
					}
					if len(streamed) != rows.Len || len(streamed) == 0 || !sameRows(streamed, tbl.Named(slices.Values(generated), q)) {
						t.Errorf("%s, columns %q, constraints %v: %d rows announced, %d streamed, %d generated",
							table, cols, constraints, rows.Len, len(streamed), len(generated))
					}
				}
			}
		}
	}
}

// Marks read again, which the walk only counted, may have changed since:
// the stream announces the rows it yields, not the walk's count.
func TestStreamOfMarksReadAgainAnnouncesWhatItYields(t *testing.T) {
	paths := fanotifytest.Files(t, 3)
	in := fanotifytest.Inotify(t, paths[:2]...)
	t.Cleanup(func() { fanotifytest.Close(in) })
	pid := fanotifytest.Hold(t, nil, in)
	env := NewEnv(config.Default(), slog.New(slog.DiscardHandler))
	t.Cleanup(env.Close)
	env.Usage = fanotify.NewScanner(env.Proc, 10*time.Second, 0, env.Log)
	r := NewRunner(All(env), time.Minute, 4, env.Log)
	rows, err := r.Stream(context.Background(), "inotify_watches", NewQueryContext(equals("pid", strconv.Itoa(pid)), nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(in, paths[2], unix.IN_MODIFY); err != nil {
		t.Fatal(err)
	}
	if n := len(slices.Collect(rows.All)); n != rows.Len {
		t.Errorf("%d rows announced, %d yielded", rows.Len, n)
	}
}

// A query that reads no column (COUNT(*)) gets a row for every row of
// SELECT * of the same holders, with no value in it.
func TestCountStarGetsARowPerMark(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	r := notifyRunner(t)
	for _, q := range []struct {
		table string
		pid   int
	}{{"fanotify_marks", k.PID1}, {"fanotify_marks", k.PID2}, {"inotify_watches", k.PID1}} {
		pid := equals("pid", strconv.Itoa(q.pid))
		all, blank := query(t, r, q.table, pid, nil), query(t, r, q.table, pid, []string{})
		if len(all) == 0 || len(blank) != len(all) {
			t.Errorf("%s WHERE pid = %d: %d rows without columns, %d with every column", q.table, q.pid, len(blank), len(all))
		}
		for i, row := range blank {
			if len(row) != 0 {
				t.Fatalf("%s WHERE pid = %d: row %d without columns holds %v", q.table, q.pid, i, row)
			}
		}
	}
}

// Rows that show no value of the mark itself cost a pointer each: the zero
// Row of COUNT(*), and for a query reading holder columns alone (SELECT
// pid, COUNT(*) ... GROUP BY pid) one set of values per holder that all its
// rows point to, not a slice of values per mark.
func TestAggregateRowsCostAPointerEach(t *testing.T) {
	env := envOverWatches(t, 2000, 1)
	for _, cols := range [][]string{{}, {"pid"}} {
		if per := bytesPerRow(t, env, cols, 2000); per > 24 {
			t.Errorf("columns %q: %.1f bytes allocated per row, want a pointer's 8 and little more", cols, per)
		}
	}
}

// A row keeps the values its query reads only, not a slot for every column
// of the table: a row of one mark column costs at least 16 bytes less per
// column it does not read than a row of all of them.
func TestRowsHoldTheColumnsReadOnly(t *testing.T) {
	env := envOverWatches(t, 2000, 1)
	one := bytesPerRow(t, env, []string{"pid", "mask"}, 2000)
	every := bytesPerRow(t, env, watchColumnsShown(), 2000)
	if unread := len(inotifyWatchColumns) - 1; every-one < float64(16*unread) {
		t.Errorf("%.1f bytes allocated per row reading one mark column, %.1f reading all: want %d less", one, every, 16*unread)
	}
}

// A stream builds each holder's rows where the previous holder's were:
// streaming the rows of an instance held through ten fds allocates their
// values and places once, not ten times, so that the rows cost at most
// half of what building them all does (formatting the values of each mark
// is the rest).
func TestStreamBuildsEachHoldersRowsInTheRoomOfThePrevious(t *testing.T) {
	env := envOverWatches(t, 500, 10)
	cols := watchColumnsShown()
	kept := bytesPerRow(t, env, cols, 5000)
	r := NewRunner(All(env), time.Minute, 4, env.Log)
	streamed := -1.0
	for range 3 {
		rows, err := r.Stream(context.Background(), "inotify_watches", NewQueryContext(nil, cols))
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		n := 0
		for range rows.All {
			n++
		}
		runtime.ReadMemStats(&after)
		if n < 5000 || n != rows.Len {
			t.Fatalf("%d rows streamed, %d announced, want at least 5000", n, rows.Len)
		}
		if per := float64(after.TotalAlloc-before.TotalAlloc) / float64(n); streamed < 0 || per < streamed {
			streamed = per
		}
	}
	if streamed > kept/2 {
		t.Errorf("%.1f bytes allocated per row streamed, %.1f per row built at once: want at most half", streamed, kept)
	}
}

// watchColumnsShown are the columns of inotify_watches SELECT * reads
// besides the holder's: pid, and every column of the watch but path.
func watchColumnsShown() []string {
	cols := []string{"pid"}
	for _, c := range inotifyWatchColumns {
		cols = append(cols, c.def.Name)
	}
	return cols
}

// envOverWatches is an Env on a host where one process holds an instance
// of n watches, through as many fds as holders.
func envOverWatches(t *testing.T, n, holders int) *Env {
	in := fanotifytest.Inotify(t, fanotifytest.Files(t, n)...)
	fanotifytest.Hold(t, nil, slices.Repeat([]int{in}, holders)...)
	fanotifytest.Close(in)
	env := NewEnv(config.Default(), slog.New(slog.DiscardHandler))
	t.Cleanup(env.Close)
	return env
}

// bytesPerRow is what building the rows of inotify_watches reading cols
// allocates per row, the least of three builds over one snapshot: the walk
// is left out, as it would be for queries sharing a snapshot (a walk under
// -race outlasts the second one serves). It fails unless there are at
// least minRows rows.
func bytesPerRow(t *testing.T, env *Env, cols []string, minRows int) float64 {
	t.Helper()
	q := NewQueryContext(nil, cols)
	ctx := context.Background()
	nq, err := newNotifyQuery(ctx, env, q, procfs.SubsystemInotify, "instance_id", readsMarks(q, inotifyWatchColumns), showsGroup(q, "instance_id"))
	if err != nil {
		t.Fatal(err)
	}
	n := nq.markRowCount(false)
	least := -1.0
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		rows := nq.markRows(ctx, inotifyWatchColumns, nil, make([]Row, 0, n), nil, keepRows)
		runtime.ReadMemStats(&after)
		if len(rows) < minRows {
			t.Fatalf("columns %q: %d rows, want at least %d", cols, len(rows), minRows)
		}
		if per := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(rows)); least < 0 || per < least {
			least = per
		}
	}
	return least
}

// sameRows compares rows in order.
func sameRows(a, b []namedRow) bool {
	return slices.EqualFunc(a, b, maps.Equal)
}

// A query constrained to a pid reads the marks and the identity of that
// pid's holders only: the walk it takes counts the marks on the host and
// keeps none, and other holders' identities stay unread.
func TestPidConstrainedQueryReadsItsHoldersOnly(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyTestUID)
	other := fanotifytest.Inotify(t, t.TempDir())
	otherPID := fanotifytest.Hold(t, nil, other)
	fanotifytest.Close(other)
	env := NewEnv(config.Default(), slog.New(slog.DiscardHandler))
	t.Cleanup(env.Close)
	r := NewRunner(All(env), time.Minute, 4, env.Log)
	rows := query(t, r, "inotify_watches", equals("pid", strconv.Itoa(k.PID1)), []string{"instance_id", "process", "uid", "wd"})
	// Within a second, the snapshot the query took.
	snap, err := env.Usage.Snapshot(context.Background(), procfs.InotifyCounts)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := env.Usage.Snapshot(context.Background(), procfs.InotifyCounts); again != snap {
		t.Skip("the snapshot expired after the query: machine too slow to tell")
	}
	if len(rows) != 2 || rows[0]["process"] != "sleep" || rows[0]["uid"] != strconv.Itoa(notifyTestUID) || rows[0]["wd"] == "" {
		t.Errorf("watches of pid %d: %v", k.PID1, rows)
	}
	if snap.Covers(procfs.Inotify) {
		t.Error("a pid-constrained query had every watch on the host parsed")
	}
	found := false
	for _, g := range snap.Inotify() {
		if h := g.Holders[0]; h.PID == otherPID {
			found = true
			if h.Comm != "" || h.UserNS != 0 {
				t.Errorf("pid %d, not asked for, had its identity read: %+v", otherPID, h.Identity)
			}
		}
	}
	if !found {
		t.Errorf("the instance of pid %d is missing from the snapshot", otherPID)
	}
}
