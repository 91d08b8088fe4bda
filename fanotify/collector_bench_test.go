package fanotify

import (
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Both benchmarks report the CPU time this process (the reader) spends per
// file created by another process: cpu-ns/file. One helper process creates
// the files in chunks small enough for the kernel queue; the event of a
// chunk's last file says the chunk was read.
const benchChunk = 5000

func BenchmarkCollectorCPUPerFile(b *testing.B) {
	root := mountTmpfs(b)
	c := startCollector(collectorConfig(root), slog.Default(), collectorOptions{})
	defer c.Stop()
	files := measureCPUPerFile(b, root, func(last string) bool { return newestPath(c) == last })
	b.ReportMetric(float64(c.Stats().EventsTotal)/float64(files), "events/file")
}

// BenchmarkMinimalFDReaderCPUPerFile is the baseline: the least an fd-mode
// reader does, a blocking read, then a readlink and a close per event.
func BenchmarkMinimalFDReaderCPUPerFile(b *testing.B) {
	root := mountTmpfs(b)
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, eventFileFlags)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, root); err != nil {
		b.Fatal(err)
	}
	var target atomic.Pointer[string]
	var reached, stopping atomic.Bool
	target.Store(new(string))
	exited := make(chan struct{})
	defer func() {
		// An event wakes the blocked read; the fd closes only after the
		// reader is gone, so it never reads a later group reusing the fd.
		stopping.Store(true)
		run(b, "touch", filepath.Join(root, "wake"))
		<-exited
		unix.Close(fd)
	}()
	go func() {
		defer close(exited)
		buf := make([]byte, readBufferSize)
		link := make([]byte, unix.PathMax)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				return
			}
			for ev := buf[:n]; len(ev) >= metadataLen; ev = ev[binary.NativeEndian.Uint32(ev):] {
				efd := int(int32(binary.NativeEndian.Uint32(ev[16:])))
				if k, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(efd), link); err == nil && string(link[:k]) == *target.Load() {
					reached.Store(true)
				}
				unix.Close(efd)
			}
			if stopping.Load() {
				return
			}
		}
	}()
	measureCPUPerFile(b, root, func(last string) bool {
		if *target.Load() != last {
			reached.Store(false)
			target.Store(&last)
		}
		return reached.Load()
	})
}

// measureCPUPerFile creates at least b.N files in chunks, waiting after each
// until done reports its last file read, and returns how many it created.
func measureCPUPerFile(b *testing.B, root string, done func(last string) bool) int {
	creator := startChunkCreator(b, root, benchChunk)
	chunks := max(1, b.N/benchChunk)
	b.ResetTimer()
	start := cpuTime(b)
	for i := range chunks {
		prefix := "c" + strconv.Itoa(i) + "-"
		last := filepath.Join(root, prefix+strconv.Itoa(benchChunk-1))
		done(last)
		creator.create(b, prefix)
		for !done(last) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	files := chunks * benchChunk
	b.ReportMetric(float64(cpuTime(b)-start)/float64(files), "cpu-ns/file")
	return files
}

// newestPath is the path of the newest buffered event.
func newestPath(c *Collector) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring.len() == 0 {
		return ""
	}
	return c.ring.at(c.ring.len() - 1).Path()
}

// cpuTime is this process's user and system CPU time in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkCollectorCPUPerRemovedDirectory reports the reader's CPU time per
// directory of an rm -rf outside the watched path, on the marked
// filesystem, once the directory cache holds each directory: a deletion
// must not search the whole cache.
func BenchmarkCollectorCPUPerRemovedDirectory(b *testing.B) {
	root := mountTmpfs(b)
	watched, other := filepath.Join(root, "watched"), filepath.Join(root, "other")
	for _, d := range []string{watched, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	c := startCollector(collectorConfig(watched), slog.Default(), collectorOptions{})
	defer c.Stop()
	sentinel := func(name string) {
		path := filepath.Join(watched, name)
		run(b, "touch", path)
		for newestPath(c) != path {
			time.Sleep(5 * time.Millisecond)
		}
	}
	// A file in each directory puts the directory's handle in the cache.
	last := strconv.Itoa(b.N - 1)
	run(b, "sh", "-c", `cd "$1" && seq -f d%g 0 "$2" | xargs mkdir && seq -f d%g/f 0 "$2" | xargs touch`, "sh", other, last)
	sentinel("created")
	b.ResetTimer()
	start := cpuTime(b)
	run(b, "rm", "-rf", other)
	sentinel("removed")
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/dir")
}
