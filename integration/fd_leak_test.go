package integration_test

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// fdCount counts the open fds of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// Hundreds of generates, concurrent and failing ones included, leave the
// extension with the fds it started with: every connection osqueryd opens
// is closed again.
func TestServingLeavesNoFDs(t *testing.T) {
	m, p, _ := launch(t, false)
	tables := productTables(t)
	generateAll := func() {
		for _, tbl := range tables {
			m.Generate(tbl.Name, "")
		}
		m.Generate("mount_points", "{")
	}
	generateAll() // the first scans open what stays open (the collector, caches)
	before := fdCount(t, p.Pid())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				generateAll()
			}
		})
	}
	wg.Wait()
	// A connection closes on the extension's side once it reads EOF.
	deadline := time.Now().Add(5 * time.Second)
	for fdCount(t, p.Pid()) > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Fewer is fine: the warm-up's last connection may still have been
	// open when "before" was counted. A leak shows as growth.
	if after := fdCount(t, p.Pid()); after > before {
		t.Errorf("%d fds before %d generates, %d after", before, 40*(len(tables)+1), after)
	}
}
