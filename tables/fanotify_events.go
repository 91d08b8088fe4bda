package tables

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery/osquery-go/plugin/table"
)

// fanotifyEvents serves the collector's buffered events, osquery-evented
// style: time and eid narrow the scan, expiry applies at query time.
func fanotifyEvents(env *Env) *Table {
	return &Table{
		Name:        "fanotify_events",
		Description: "File events under collector.paths recorded by the fanotify collector (a notification-only group), newest collector.buffer_max kept, older than collector.expiry_s dropped. An OVERFLOW row means the kernel queue overflowed and events were lost. Empty when the collector is disabled.",
		Columns: []table.ColumnDefinition{
			bigint("time", "When the collector read the event, unix seconds", index),
			bigint("time_ns", "When the collector read the event, unix nanoseconds"),
			text("eid", "Event id, increasing by one per recorded event", hidden, index),
			bigint("pid", "Process that caused the event (0 for OVERFLOW)"),
			text("process", "Command name of that process, best effort: empty when it exited before the event was read"),
			bigint("uid", "Effective uid of that process, best effort; -1 when unknown"),
			text("path", "Path of the file or directory; invalid UTF-8 bytes as \\xNN"),
			text("action", "Event names joined by |, e.g. MODIFY|CLOSE_WRITE, CREATE|ONDIR, OVERFLOW. Events on one object from one process merge while queued"),
			bigint("mask", "fanotify event mask (FAN_* bits)"),
			text("watch_path", "The configured path whose subtree holds path"),
			integer("overflow", "1 for a queue-overflow row"),
		},
		Generate: func(ctx context.Context, q QueryContext) ([]Row, error) {
			if env.Collector == nil {
				return nil, nil
			}
			var rows []Row
			for _, e := range env.Collector.Events(eventFilter(q)) {
				rows = append(rows, eventRow(&e))
			}
			return rows, nil
		},
	}
}

// eventFilter narrows the scan by time, time_ns and eid. Constraints are
// hints: anything it cannot use keeps the event.
func eventFilter(q QueryContext) func(*fanotify.Event) bool {
	secs, nanos := q.IntRange("time"), q.IntRange("time_ns")
	ids, byID := q.IntEquals("eid")
	return func(e *fanotify.Event) bool {
		return secs.Contains(e.TimeNs/1e9) && nanos.Contains(e.TimeNs) &&
			(!byID || slices.Contains(ids, int64(e.ID)))
	}
}

func eventRow(e *fanotify.Event) Row {
	uid := "-1"
	if v, ok := e.EffectiveUID(); ok {
		uid = strconv.FormatUint(uint64(v), 10)
	}
	return Row{
		"time":       strconv.FormatInt(e.TimeNs/1e9, 10),
		"time_ns":    strconv.FormatInt(e.TimeNs, 10),
		"eid":        fmt.Sprintf("%010d", e.ID),
		"pid":        strconv.FormatInt(int64(e.PID), 10),
		"process":    e.Process(),
		"uid":        uid,
		"path":       e.Path(),
		"action":     e.Action(),
		"mask":       strconv.FormatUint(e.Mask, 10),
		"watch_path": e.WatchPath(),
		"overflow":   boolInt(e.Overflow()),
	}
}
