package main

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
)

// A tmpfs a phase mounts is removed by the run's cleanup, should the
// phase not get to it.
func TestTmpfsIsRemovedAtCleanup(t *testing.T) {
	b := &bench{ctx: context.Background()}
	dir, _, err := b.tmpfs("fanobench-test")
	if err != nil {
		t.Fatal(err)
	}
	b.cleanup()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		unmountTmpfs(dir)
		t.Fatalf("%s is still there after the cleanup: %v", dir, err)
	}
}

// An interrupted run measures nothing more: the phase returns, so that it
// removes what it built before the cleanup runs.
func TestMeasureStopsWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &bench{ctx: ctx}
	ran := false
	_, err := b.measure(3, item{name: "x", run: func() error { ran = true; return nil }})
	if !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("measure after an interrupt: %v, ran %v", err, ran)
	}
}

// Each measured run of a long-lived extension comes once the snapshot of
// the run before has stopped serving, so that it walks /proc again.
func TestLongLivedRunsWaitOutTheSnapshot(t *testing.T) {
	it, close, err := longLived("limits", limitsStar, 1, "fanotify_limits")
	if err != nil {
		t.Fatal(err)
	}
	defer close()
	b := &bench{ctx: context.Background()}
	start := time.Now()
	if _, err := b.measure(2, it); err != nil {
		t.Fatal(err)
	}
	// The warm-up's snapshot, then the first run's, each waited out.
	if took := time.Since(start); took < 3*fanotify.SnapshotMaxAge/2 {
		t.Errorf("two runs took %v: a run came before the snapshot before it (%v) stopped serving", took, fanotify.SnapshotMaxAge)
	}
}
