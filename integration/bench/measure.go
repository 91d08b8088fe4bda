package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// cost is what one run of something took: CPU time (user + system, every
// thread) and wall time.
type cost struct {
	CPU, Wall time.Duration
}

// median is the per-field median of runs.
func median(runs []cost) cost {
	cpus := make([]time.Duration, len(runs))
	walls := make([]time.Duration, len(runs))
	for i, r := range runs {
		cpus[i], walls[i] = r.CPU, r.Wall
	}
	return cost{CPU: medianOf(cpus), Wall: medianOf(walls)}
}

func medianOf(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// measureOnce runs f once in this process. The heap is collected first,
// outside the measurement, so that the run pays only for the garbage it
// makes itself.
func measureOnce(f func() error) (cost, error) {
	runtime.GC()
	cpu0, wall0 := selfCPU(), time.Now()
	err := f()
	return cost{CPU: selfCPU() - cpu0, Wall: time.Since(wall0)}, err
}

// selfCPU is this process's user and system time (getrusage).
func selfCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err) // cannot fail for RUSAGE_SELF
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processCPU is the CPU time another process has used so far, with
// nanosecond resolution: the sum over its threads of the run time in
// /proc/PID/task/TID/schedstat (user and system together). /proc/PID/stat's
// utime+stime counts clock ticks (10 ms), too coarse for one query. A
// thread that exits between two readings would drop out of the sum; the
// Go runtime does not end its threads.
func processCPU(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("pid %d: no tasks", pid)
	}
	var total time.Duration
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited meanwhile
		}
		first, _, _ := bytes.Cut(data, []byte{' '})
		ns, err := strconv.ParseInt(string(first), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}

// vmRSS is a process's resident set size in bytes.
func vmRSS(pid int) (int64, error) { return statusBytes(pid, "VmRSS:") }

// vmHWM is a process's peak resident set size in bytes.
func vmHWM(pid int) (int64, error) { return statusBytes(pid, "VmHWM:") }

// statusBytes is a size in kB of /proc/PID/status, in bytes.
func statusBytes(pid int, key string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(data) {
		if rest, ok := bytes.CutPrefix(line, []byte(key)); ok {
			f := bytes.Fields(rest)
			kb, err := strconv.ParseInt(string(f[0]), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("pid %d: no %s", pid, key)
}
