package fanotify

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

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
