package content

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
)

// Load the benchmark holds while it measures, so that the tables have
// something to read: a workstation with an IDE and a file-watching agent.
const (
	benchWatches   = 20000 // inotify watches, over benchInstances instances
	benchInstances = 4
	benchMarks     = 2000 // fanotify inode marks in one group
)

// BenchmarkContentCost measures what each query and policy costs one
// scheduled run on this host while the benchmark holds the load above: CPU
// time of the whole process (walk of /proc, generates, SQLite) and the size
// of the results as osquery logs them, a JSON array of objects. Every run
// starts from a fresh engine, as a run an interval after the last one finds
// no /proc snapshot to reuse.
//
//	go test -run '^$' -bench ContentCost -benchtime 20x ./integration/content/
func BenchmarkContentCost(b *testing.B) {
	holdLoad(b)
	def := load(b)
	statements := map[string]string{}
	for _, q := range def.Queries {
		statements[q.Name] = q.SQL
	}
	for _, p := range def.Policies {
		statements[p.Name] = p.SQL
	}
	for name, sql := range statements {
		b.Run(name, func(b *testing.B) {
			var cpu time.Duration
			var bytes int
			for range b.N {
				engine := newEngine(b, config.Default())
				start := cpuTime(b)
				res, err := engine.Query(context.Background(), sql)
				cpu += cpuTime(b) - start
				if err != nil {
					b.Fatal(err)
				}
				bytes += loggedSize(b, res.Columns, res.Rows)
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(bytes)/float64(b.N), "result-bytes/op")
		})
	}
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loggedSize(b *testing.B, cols []string, rows [][]string) int {
	objects := make([]map[string]string, len(rows))
	for i, row := range rows {
		objects[i] = map[string]string{}
		for j, c := range cols {
			objects[i][c] = row[j]
		}
	}
	data, err := json.Marshal(objects)
	if err != nil {
		b.Fatal(err)
	}
	return len(data)
}

// holdLoad creates benchWatches files and watches them with inotify, and
// marks benchMarks of them in one fanotify group, until the benchmark ends.
func holdLoad(b *testing.B) {
	dir := b.TempDir()
	var instances []int
	for range benchInstances {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
		if err != nil {
			b.Fatal(err)
		}
		instances = append(instances, fd)
	}
	group, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, fd := range append(instances, group) {
			unix.Close(fd)
		}
	})
	for i := range benchWatches {
		path := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.InotifyAddWatch(instances[i%benchInstances], path, unix.IN_MODIFY); err != nil {
			b.Fatal(err)
		}
		if i < benchMarks {
			if err := unix.FanotifyMark(group, unix.FAN_MARK_ADD, unix.FAN_MODIFY, unix.AT_FDCWD, path); err != nil {
				b.Fatal(err)
			}
		}
	}
}
