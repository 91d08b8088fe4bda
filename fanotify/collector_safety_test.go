package fanotify

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
)

// permissionEvents are the events that make writers wait for the listener
// (FAN_OPEN_PERM, FAN_ACCESS_PERM, FAN_OPEN_EXEC_PERM, FAN_PRE_ACCESS).
const permissionEvents = 0x10000 | 0x20000 | 0x40000 | 0x100000

// Whatever events are configured, the kernel holds the collector's group as
// notification-class with no permission event in any mark: a stalled
// collector never blocks a process opening a file.
func TestCollectorNeverAsksForPermissionEvents(t *testing.T) {
	for _, mark := range config.MarkStrategies {
		t.Run(mark, func(t *testing.T) {
			cfg := collectorConfig(t.TempDir())
			cfg.Mark, cfg.Events = mark, config.EventNames
			c := startTestCollector(t, cfg, collectorOptions{})
			info := groupFdinfo(t, c)
			if class := info.GroupFlags & (unix.FAN_CLASS_CONTENT | unix.FAN_CLASS_PRE_CONTENT); class != unix.FAN_CLASS_NOTIF {
				t.Errorf("group flags %#x: class bits %#x, want 0 (FAN_CLASS_NOTIF)", info.GroupFlags, class)
			}
			if info.MarkCount == 0 {
				t.Fatal("no marks")
			}
			for _, m := range slices.Collect(info.All()) {
				if m.Mask&permissionEvents != 0 {
					t.Errorf("%s mark mask %#x holds permission events", m.Kind, m.Mask)
				}
			}
		})
	}
}
