package integration_test

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
)

// notifyUID is the euid of the processes holding the known objects, so that
// every count charged to it comes from them.
const notifyUID = 3123456791

// The known objects (see fanotifytest.Known) counted through SQL as a user
// would: the embedded engine runs the same generates as osqueryd.
func TestQueryCountsFanotifyAndInotify(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyUID)
	uid := strconv.Itoa(notifyUID)
	groupA := fmt.Sprintf("%d:3", k.PID1)
	cases := []struct {
		sql  string
		want map[string]string
	}{
		{"SELECT COUNT(*) AS groups, SUM(marks) AS marks, SUM(holders) AS fds FROM fanotify_groups WHERE charged_uid = " + uid,
			map[string]string{"groups": "4", "marks": "7", "fds": "6"}},
		{"SELECT SUM(marks) AS charged FROM fanotify_groups WHERE charged_uid = " + uid + " AND unlimited_marks = 0",
			map[string]string{"charged": "6"}},
		{"SELECT SUM(primary_holder) AS marks, COUNT(*) AS rows FROM fanotify_marks WHERE uid = " + uid + " AND mark_type != 'none'",
			map[string]string{"marks": "7", "rows": "17"}},
		{"SELECT COUNT(*) AS n FROM fanotify_marks WHERE group_id = '" + groupA + "'",
			map[string]string{"n": "15"}},
		{fmt.Sprintf("SELECT COUNT(*) AS n, SUM(primary_holder) AS primary_rows FROM fanotify_marks WHERE pid = %d AND group_id = '%s'", k.PID2, groupA),
			map[string]string{"n": "5", "primary_rows": "0"}},
		{"SELECT COUNT(*) AS instances, SUM(watches) AS watches FROM inotify_instances WHERE charged_uid = " + uid,
			map[string]string{"instances": "2", "watches": "2"}},
		{fmt.Sprintf("SELECT COUNT(*) AS n FROM inotify_watches WHERE pid IN (%d, %d) AND path = '%s'", k.PID1, k.PID2, k.Files[0]),
			map[string]string{"n": "1"}},
	}
	for _, c := range cases {
		got := queryCommandJSON(t, c.sql)
		if !slices.EqualFunc(got, []map[string]string{c.want}, maps.Equal) {
			t.Errorf("%s\n got %v\nwant %v", c.sql, got, c.want)
		}
	}
}

// Over Thrift a pid constraint on a holder that is not the lowest-pid one
// still gets the group under its stable id.
func TestNotifyTablesOverThrift(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyUID)
	m, _, _ := launch(t, false)
	groupA := fmt.Sprintf("%d:3", k.PID1)
	ctx := fmt.Sprintf(`{"constraints":[{"name":"pid","list":[{"op":2,"expr":"%d"}],"affinity":"BIGINT"}],"colsUsed":["pid","group_id","primary_holder","mark_type"]}`, k.PID2)
	rows := generate(t, m, "fanotify_marks", ctx)
	n := 0
	for _, r := range rows {
		if r["pid"] != strconv.Itoa(k.PID2) {
			t.Fatalf("row of pid %s for a pid = %d constraint", r["pid"], k.PID2)
		}
		if r["group_id"] == groupA {
			n++
			if r["primary_holder"] != "0" {
				t.Errorf("pid %d is not group A's primary holder: %v", k.PID2, r)
			}
		}
	}
	if n != 5 {
		t.Errorf("%d rows of group %s for pid %d, want 5", n, groupA, k.PID2)
	}
	groups := generate(t, m, "fanotify_groups", `{"constraints":[{"name":"group_id","list":[{"op":2,"expr":"`+groupA+`"}],"affinity":"TEXT"}]}`)
	if len(groups) != 1 || groups[0]["holders"] != "3" || groups[0]["marks"] != "5" {
		t.Errorf("group %s over Thrift: %v", groupA, groups)
	}
}

// A per-mark query over max_rows gets a failure status naming the cap, and
// the extension keeps serving: the same query narrowed under the cap works.
// PID1 holds group A (5 marks) through fds 3 and 4 and group D (no marks).
func TestMaxRowsOverThrift(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyUID)
	cfg := filepath.Join(t.TempDir(), "fanotify.json")
	if err := os.WriteFile(cfg, []byte(`{"max_rows": 10}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m, p, _ := launch(t, false, "--config", cfg)
	byPID := func(extra string) string {
		return fmt.Sprintf(`{"constraints":[{"name":"pid","list":[{"op":2,"expr":"%d"}],"affinity":"BIGINT"}%s]}`, k.PID1, extra)
	}
	_, err := m.Generate("fanotify_marks", byPID(""))
	var status *standin.StatusError
	if !errors.As(err, &status) || !strings.Contains(status.Message, "would return 11 rows, over max_rows (10)") {
		t.Fatalf("11 rows over max_rows 10: %v, want a failure status naming both", err)
	}
	groupA := fmt.Sprintf(`,{"name":"group_id","list":[{"op":2,"expr":"%d:3"}],"affinity":"TEXT"}`, k.PID1)
	if rows := generate(t, m, "fanotify_marks", byPID(groupA)); len(rows) != 10 {
		t.Errorf("group A through PID1's two fds: %d rows, want 10", len(rows))
	}
	requireServing(t, m, p)
}

// path is hidden: SELECT * decodes no file handle and shows no path, and a
// query that names path gets each watch's file.
func TestSelectStarLeavesPathOut(t *testing.T) {
	k := fanotifytest.HoldKnownObjects(t, notifyUID)
	var st unix.Stat_t
	if err := unix.Stat(k.Files[0], &st); err != nil {
		t.Fatal(err)
	}
	where := fmt.Sprintf(" FROM inotify_watches WHERE pid = %d AND inode = %d", k.PID1, st.Ino)
	star := queryCommandJSON(t, "SELECT *"+where)
	if len(star) != 1 {
		t.Fatalf("SELECT *: %d rows, want 1", len(star))
	}
	if _, ok := star[0]["path"]; ok || star[0]["wd"] == "" {
		t.Errorf("SELECT * row %v: want every column but path", star[0])
	}
	named := queryCommandJSON(t, "SELECT *, path"+where)
	if len(named) != 1 || named[0]["path"] != k.Files[0] {
		t.Errorf("SELECT *, path: %v, want path %s", named, k.Files[0])
	}
}

// A per-mark result sent as it is built, over many writes of the extension's
// 64 KiB buffer, arrives whole: every watch of a large instance, once each,
// among the watches of the whole host.
func TestLargeStreamedResult(t *testing.T) {
	const watches = 3000
	paths := fanotifytest.Files(t, watches)
	in := fanotifytest.Inotify(t, paths...)
	pid := fanotifytest.Hold(t, nil, in)
	fanotifytest.Close(in)
	want := map[string]bool{}
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		want[strconv.FormatUint(st.Ino, 10)] = true
	}
	m, _, _ := launch(t, false)
	size, got, wds := 0, map[string]bool{}, map[string]bool{}
	for _, r := range generate(t, m, "inotify_watches", "") {
		for k, v := range r {
			size += len(k) + len(v)
		}
		if r["pid"] == strconv.Itoa(pid) {
			got[r["inode"]], wds[r["wd"]] = true, true
		}
	}
	if size < 4*64<<10 {
		t.Fatalf("result of %d bytes spans fewer than four writes", size)
	}
	if !maps.Equal(got, want) || len(wds) != watches {
		t.Errorf("holder %d: %d distinct watched inodes of %d, %d distinct wds", pid, len(got), watches, len(wds))
	}
}
