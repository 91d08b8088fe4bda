package tables

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
)

// benchWatches is the size of the inotify instance and of the fanotify
// group the benchmarks read.
const benchWatches = 5000

func holdManyMarks(b *testing.B) {
	paths := fanotifytest.Files(b, benchWatches)
	in := fanotifytest.Inotify(b, paths...)
	fan := fanotifytest.Fanotify(b, unix.FAN_REPORT_FID)
	for _, p := range paths {
		fanotifytest.Mark(b, fan, 0, unix.FAN_MODIFY, p)
	}
	fanotifytest.Hold(b, nil, in, fan)
	fanotifytest.Close(in, fan)
}

// rawWalk is the least any scan does: list every fd of every process,
// readlink it, and read the fdinfo of each fanotify or inotify fd.
func rawWalk(b *testing.B) int {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join("/proc", p.Name(), "fd"))
		for _, fd := range fds {
			link, _ := os.Readlink(filepath.Join("/proc", p.Name(), "fd", fd.Name()))
			if strings.Contains(link, "notify") {
				data, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "fdinfo", fd.Name()))
				n += len(data)
			}
		}
	}
	return n
}

// BenchmarkCountStar compares SELECT COUNT(*) on each table (no column
// read: no path resolution) with the raw walk; the goal is 1.1x. Each
// iteration takes a fresh snapshot.
func BenchmarkCountStar(b *testing.B) {
	holdManyMarks(b)
	b.Run("raw_walk", func(b *testing.B) {
		for b.Loop() {
			rawWalk(b)
		}
	})
	for _, table := range []string{"inotify_watches", "inotify_instances", "fanotify_marks", "fanotify_groups"} {
		b.Run(table, func(b *testing.B) {
			for b.Loop() {
				env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
				rows, err := NewRunner(All(env), time.Minute, 1, env.Log).Generate(context.Background(), table, NewQueryContext(nil, []string{}))
				if err != nil || len(rows) == 0 {
					b.Fatalf("%d rows, %v", len(rows), err)
				}
			}
		})
	}
}

// BenchmarkMarkRows measures building the rows of SELECT * on each per-mark
// table from a snapshot already read: the walk and the holders' identities
// are left out of the timing, so the figure is what building the rows adds
// to them. Each iteration walks /proc untimed first; run it with a fixed
// count: go test -run '^$' -bench MarkRows -benchtime 20x ./tables/
func BenchmarkMarkRows(b *testing.B) {
	holdManyMarks(b)
	for _, name := range []string{"inotify_watches", "fanotify_marks"} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
				r := NewRunner(All(env), time.Minute, 1, env.Log)
				tbl, _ := r.Table(name)
				var star []string
				for _, c := range tbl.Columns {
					if !c.Hidden {
						star = append(star, c.Name)
					}
				}
				q := NewQueryContext(nil, star)
				if _, err := r.Generate(context.Background(), name, q); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				rows, err := r.Generate(context.Background(), name, q)
				b.StopTimer()
				if err != nil || len(rows) < benchWatches {
					b.Fatalf("%d rows, %v", len(rows), err)
				}
				env.Close()
			}
		})
	}
}
