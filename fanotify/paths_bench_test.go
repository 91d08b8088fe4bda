package fanotify

import (
	"context"
	"slices"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// BenchmarkInodeMarkPaths resolves a group's inode marks in a fresh
// snapshot: decoding each handle, or checking the path the previous
// snapshot decoded.
func BenchmarkInodeMarkPaths(b *testing.B) {
	h := fanotifytest.HoldKnownObjects(b, testUID)
	fs := procfs.NewFS(procfs.DefaultRoot)
	walk, err := fs.WalkNotifyFDs(context.Background(), procfs.AllMarks, KeptMarks, nil)
	if err != nil {
		b.Fatal(err)
	}
	var marks []procfs.Mark
	for _, fd := range walk.FDs {
		if fd.PID != h.PID1 || fd.FD != 3 {
			continue
		}
		for _, m := range slices.Collect(fd.Info.All()) {
			if m.Kind == procfs.MarkInode {
				marks = append(marks, m)
			}
		}
	}
	holder := Holder{process: &process{Identity: procfs.Identity{PID: h.PID1}}, FD: 3}
	for _, bc := range []struct {
		name  string
		reuse bool
	}{{"decode", false}, {"reuse", true}} {
		b.Run(bc.name, func(b *testing.B) {
			prev := &Snapshot{}
			prev.paths.init(fs, nil)
			prev.MarkPaths(holder, marks)
			for b.Loop() {
				snap := &Snapshot{}
				if bc.reuse {
					snap.paths.init(fs, &prev.paths)
				} else {
					snap.paths.init(fs, nil)
				}
				if got := snap.MarkPaths(holder, marks); got[0] == "" {
					b.Fatalf("no path for %+v", marks[0])
				}
				prev = snap
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(marks)), "ns/mark")
		})
	}
}
