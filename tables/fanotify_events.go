package tables

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
)

// fanotifyEvents serves the collector's buffered events, osquery-evented
// style: time and eid narrow the scan, expiry applies at query time.
func fanotifyEvents(env *Env) *Table {
	return &Table{
		Name:        "fanotify_events",
		Description: "File events under collector.paths recorded by the fanotify collector (a notification-only group), newest collector.buffer_max kept, older than collector.expiry_s dropped. An OVERFLOW row means the kernel queue overflowed and events were lost. Empty when the collector is disabled.",
		Columns:     definitions(eventColumns),
		Generate: func(ctx context.Context, q QueryContext) ([]Row, error) {
			return rowsOf(eventColumns, usedOf(definitions(eventColumns), q), bufferedEvents(env, q)), nil
		},
		Stream: func(ctx context.Context, q QueryContext) (Rows, error) {
			return streamOf(eventColumns, usedOf(definitions(eventColumns), q), bufferedEvents(env, q)), nil
		},
	}
}

// bufferedEvents are the collector's events that q may want, copied: the
// collector keeps recording while they are sent.
func bufferedEvents(env *Env, q QueryContext) []fanotify.Event {
	if env.Collector == nil {
		return nil
	}
	return env.Collector.Events(eventFilter(q))
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

var eventColumns = []column[*fanotify.Event]{
	{bigint("time", "When the collector read the event, unix seconds", index),
		func(e *fanotify.Event) string { return strconv.FormatInt(e.TimeNs/1e9, 10) }},
	{bigint("time_ns", "When the collector read the event, unix nanoseconds"),
		func(e *fanotify.Event) string { return strconv.FormatInt(e.TimeNs, 10) }},
	{text("eid", "Event id, increasing by one per recorded event", hidden, index),
		func(e *fanotify.Event) string { return fmt.Sprintf("%010d", e.ID) }},
	{bigint("pid", "Process that caused the event, in the extension's pid namespace: 0 for OVERFLOW, for a process outside that namespace, and for other processes when the group was created without CAP_SYS_ADMIN"),
		func(e *fanotify.Event) string { return strconv.FormatInt(int64(e.PID), 10) }},
	{text("process", "Command name of that process, best effort: empty when it exited before the event was read, or when /proc is another pid namespace's"),
		(*fanotify.Event).Process},
	{bigint("uid", "Effective uid of that process, best effort; -1 when unknown"), eventUID},
	{text("path", "Path of the file or directory; invalid UTF-8 bytes as \\xNN"), (*fanotify.Event).Path},
	{text("action", "Event names joined by |, e.g. MODIFY|CLOSE_WRITE, CREATE|ONDIR, OVERFLOW. Events on one object from one process merge while queued"),
		(*fanotify.Event).Action},
	{bigint("mask", "fanotify event mask (FAN_* bits)"), func(e *fanotify.Event) string { return strconv.FormatUint(e.Mask, 10) }},
	{text("watch_path", "The configured path whose subtree holds path"), (*fanotify.Event).WatchPath},
	{integer("overflow", "1 for a queue-overflow row"), func(e *fanotify.Event) string { return boolInt(e.Overflow()) }},
}

func eventUID(e *fanotify.Event) string {
	if v, ok := e.EffectiveUID(); ok {
		return strconv.FormatUint(uint64(v), 10)
	}
	return "-1"
}
