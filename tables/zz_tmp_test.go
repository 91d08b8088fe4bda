package tables

import (
	"os"
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
)

func selfCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func zzStar() QueryContext {
	env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	var cols []string
	for _, t := range All(env) {
		if t.Name != "fanotify_marks" && t.Name != "inotify_watches" { continue }
		for _, c := range t.Columns {
			if !c.Hidden { cols = append(cols, c.Name) }
		}
	}
	return NewQueryContext(nil, cols)
}

func zzRaw() {
	pids, _ := zzList("/proc")
	link := make([]byte, 64)
	buf := make([]byte, 1<<20)
	for _, pid := range pids {
		if pid[0] < '0' || pid[0] > '9' { continue }
		fdDir := "/proc/" + pid + "/fd"
		fds, err := zzList(fdDir)
		if err != nil { continue }
		for _, fd := range fds {
			n, err := unix.Readlink(fdDir+"/"+fd, link)
			if err != nil { continue }
			if s := string(link[:n]); s != "anon_inode:inotify" && s != "anon_inode:[fanotify]" { continue }
			f, err := unix.Open("/proc/"+pid+"/fdinfo/"+fd, unix.O_RDONLY, 0)
			if err != nil { continue }
			for { m, _ := unix.Read(f, buf); if m <= 0 { break } }
			unix.Close(f)
		}
	}
}

func zzList(p string) ([]string, error) {
	d, err := os.Open(p)
	if err != nil { return nil, err }
	defer d.Close()
	return d.Readdirnames(-1)
}

func TestZZStar(t *testing.T) {
	star := zzStar()
	var raw time.Duration
	for i := 0; i < 10; i++ {
		runtime.GC()
		c0 := selfCPU()
		zzRaw()
		raw += selfCPU() - c0
	}
	t.Logf("raw: %v", raw/10)
	for _, q := range []struct{name string; q QueryContext}{{"star", star}, {"count", NewQueryContext(nil, []string{})}} {
		var tot time.Duration
		n := 10
		for i := 0; i < n; i++ {
			runtime.GC()
			c0 := selfCPU()
			env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			r := NewRunner(All(env), time.Minute, 4, env.Log)
			for _, tb := range []string{"fanotify_marks", "inotify_watches"} {
				if _, err := r.Generate(context.Background(), tb, q.q); err != nil { t.Fatal(err) }
			}
			env.Close()
			tot += selfCPU() - c0
		}
		t.Logf("%s: %v %.3f", q.name, tot/time.Duration(n), float64(tot)/float64(raw))
	}
}

func TestZZRowsOnly(t *testing.T) {
	star := zzStar()
	env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := NewRunner(All(env), time.Minute, 4, env.Log)
	for _, tb := range []string{"fanotify_marks", "inotify_watches"} {
		r.Generate(context.Background(), tb, star)
	}
	for _, tb := range []string{"fanotify_marks", "inotify_watches"} {
		runtime.GC()
		c0 := selfCPU()
		n := 0
		for i := 0; i < 30; i++ {
			rows, _ := r.Generate(context.Background(), tb, star)
			n = len(rows)
		}
		t.Logf("%s rows only: %v (%d rows)", tb, (selfCPU()-c0)/30, n)
	}
}

func TestZZAlloc(t *testing.T) {
	star := zzStar()
	for _, q := range []struct{name string; q QueryContext}{{"star", star}, {"count", NewQueryContext(nil, []string{})}} {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		r := NewRunner(All(env), time.Minute, 4, env.Log)
		for _, tb := range []string{"fanotify_marks", "inotify_watches"} {
			r.Generate(context.Background(), tb, q.q)
		}
		runtime.ReadMemStats(&m1)
		t.Logf("%s: alloc %d MB, mallocs %d, gcs %d", q.name, (m1.TotalAlloc-m0.TotalAlloc)>>20, m1.Mallocs-m0.Mallocs, m1.NumGC-m0.NumGC)
	}
}

func TestZZRawSplit(t *testing.T) {
	var u, s time.Duration
	for i := 0; i < 10; i++ {
		runtime.GC()
		var r0, r1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &r0)
		zzRaw()
		unix.Getrusage(unix.RUSAGE_SELF, &r1)
		u += time.Duration(r1.Utime.Nano() - r0.Utime.Nano())
		s += time.Duration(r1.Stime.Nano() - r0.Stime.Nano())
	}
	t.Logf("raw go: user %v sys %v", u/10, s/10)
}

func TestZZIdentities(t *testing.T) {
	for i := 0; i < 3; i++ {
		env := NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		snap, _ := env.Usage.Snapshot(context.Background())
		runtime.GC()
		c0 := selfCPU()
		w0 := time.Now()
		snap.ReadIdentities()
		t.Logf("identities: cpu %v wall %v", selfCPU()-c0, time.Since(w0))
		env.Close()
	}
}
