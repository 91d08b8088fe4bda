package integration_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// orBranch is one term of a WHERE clause that SQLite runs as a multi-index
// OR: the context osqueryd sends for it, and the term SQLite re-applies.
type orBranch struct {
	context string
	match   func(row map[string]string) bool
}

// multiIndexOr returns what osqueryd returns for an OR of branches: SQLite
// runs one generate per branch and keeps a row that matches the branch's term
// unless an earlier branch returned its rowid. osqueryd takes a row's rowid
// from its "rowid" key, and otherwise numbers each generate's rows from 0
// (DynamicTableRow::get_rowid, xRowid).
func multiIndexOr(t *testing.T, generate func(context string) []map[string]string, branches ...orBranch) []map[string]string {
	t.Helper()
	earlier := map[int64]bool{}
	var kept []map[string]string
	for _, b := range branches {
		var returned []int64
		for i, row := range generate(b.context) {
			if !b.match(row) {
				continue
			}
			rowid := int64(i)
			if v, ok := row[tables.RowIDKey]; ok {
				var err error
				if rowid, err = strconv.ParseInt(v, 10, 64); err != nil {
					t.Fatalf("row %v: osqueryd fails the query on rowid %q", row, v)
				}
			}
			if earlier[rowid] {
				continue
			}
			returned = append(returned, rowid)
			kept = append(kept, row)
		}
		for _, id := range returned {
			earlier[id] = true
		}
	}
	return kept
}

// watchKeys are the rows' "pid fd instance_id wd", sorted.
func watchKeys(rows []map[string]string) []string {
	var keys []string
	for _, r := range rows {
		keys = append(keys, r["pid"]+" "+r["fd"]+" "+r["instance_id"]+" "+r["wd"])
	}
	slices.Sort(keys)
	return keys
}

// An OR across two indexed columns, run by osqueryd's SQLite as one generate
// per branch, returns every row a plain scan returns, once: an instance of
// two watches held by a parent as fds 3 and 4 (dup) and by its child,
// queried WHERE pid = CHILD OR instance_id = 'PARENT:3'.
func TestMultiIndexOrOverThriftReturnsWhatAPlainScanReturns(t *testing.T) {
	files := fanotifytest.Files(t, 2)
	in := fanotifytest.Inotify(t, files...)
	parent := fanotifytest.Hold(t, nil, in, in)
	child := fanotifytest.Hold(t, nil, in)
	fanotifytest.Close(in)
	m, _, _ := launch(t, false)

	const colsUsed = `"colsUsed":["pid","fd","instance_id","wd"]`
	byPID := func(pid int) string {
		return fmt.Sprintf(`{"constraints":[{"name":"pid","list":[{"op":2,"expr":"%d"}],"affinity":"BIGINT"}],%s}`, pid, colsUsed)
	}
	parentRows := generate(t, m, "inotify_watches", byPID(parent))
	if len(parentRows) != 4 {
		t.Fatalf("parent's rows: %v, want 2 watches through 2 fds", parentRows)
	}
	instance := parentRows[0]["instance_id"]
	childPID := strconv.Itoa(child)
	isChild := func(r map[string]string) bool { return r["pid"] == childPID }
	ofInstance := func(r map[string]string) bool { return r["instance_id"] == instance }

	got := multiIndexOr(t, func(ctx string) []map[string]string { return generate(t, m, "inotify_watches", ctx) },
		orBranch{byPID(child), isChild},
		orBranch{fmt.Sprintf(`{"constraints":[{"name":"instance_id","list":[{"op":2,"expr":%q}],"affinity":"TEXT"}],%s}`, instance, colsUsed), ofInstance},
	)
	want := slices.DeleteFunc(generate(t, m, "inotify_watches", "{"+colsUsed+"}"), func(r map[string]string) bool {
		return !isChild(r) && !ofInstance(r)
	})
	if len(want) != 6 {
		t.Fatalf("plain scan: %v, want 2 watches through 3 fds", watchKeys(want))
	}
	if !slices.Equal(watchKeys(got), watchKeys(want)) {
		t.Errorf("WHERE pid = %d OR instance_id = '%s'\n got %v\nwant %v", child, instance, watchKeys(got), watchKeys(want))
	}
}
