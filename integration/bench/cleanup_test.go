package main

import (
	"context"
	"errors"
	"os"
	"testing"
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
