package fanotify

import (
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Both benchmarks report the CPU time this process (the reader) spends per
// file created by another process: cpu-ns/file. The files come in chunks
// small enough for the kernel queue, each followed by a sentinel file whose
// event says the chunk was read.
const benchChunk = 5000

func BenchmarkCollectorCPUPerFile(b *testing.B) {
	root := mountTmpfs(b)
	cfg := collectorConfig(root)
	cfg.BufferMax = 1000 // keeps the sentinel lookup cheap
	c := startCollector(cfg, slog.Default(), collectorOptions{})
	defer c.Stop()
	seen := func(sentinel string) bool {
		return len(c.Events(func(e *Event) bool { return e.Path() == sentinel })) > 0
	}
	measureCPUPerFile(b, root, seen)
	b.ReportMetric(float64(c.Stats().EventsTotal)/float64(b.N), "events/file")
}

// BenchmarkMinimalFDReaderCPUPerFile is the baseline: the least an fd-mode
// reader does, a readlink and a close per event.
func BenchmarkMinimalFDReaderCPUPerFile(b *testing.B) {
	root := mountTmpfs(b)
	fd, err := unix.FanotifyInit(baseInitFlags, eventFileFlags)
	if err != nil {
		b.Fatal(err)
	}
	group := os.NewFile(uintptr(fd), "fanotify")
	defer group.Close()
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, root); err != nil {
		b.Fatal(err)
	}
	var last atomic.Value
	last.Store("")
	go func() {
		buf := make([]byte, readBufferSize)
		link := make([]byte, unix.PathMax)
		for {
			n, err := group.Read(buf)
			if err != nil {
				return
			}
			for ev := buf[:n]; len(ev) >= metadataLen; ev = ev[binary.NativeEndian.Uint32(ev):] {
				efd := int(int32(binary.NativeEndian.Uint32(ev[16:])))
				if k, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(efd), link); err == nil && strings.Contains(string(link[:k]), "sentinel") {
					last.Store(string(link[:k]))
				}
				unix.Close(efd)
			}
		}
	}()
	measureCPUPerFile(b, root, func(sentinel string) bool { return last.Load() == sentinel })
}

func measureCPUPerFile(b *testing.B, root string, seen func(sentinel string) bool) {
	b.ResetTimer()
	start := cpuTime(b)
	for i := 0; i < b.N; i += benchChunk {
		prefix := "c" + strconv.Itoa(i) + "-"
		createFilesElsewhere(b, root, prefix, min(benchChunk, b.N-i))
		sentinel := filepath.Join(root, prefix+"sentinel")
		run(b, "touch", sentinel)
		for !seen(sentinel) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/file")
}

// cpuTime is this process's user and system CPU time in nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
