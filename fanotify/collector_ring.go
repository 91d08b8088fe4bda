package fanotify

import (
	"strings"
	"unique"

	"golang.org/x/sys/unix"
)

// Event is one recorded fanotify event. It is kept small because up to
// collector.buffer_max of them stay in memory: directories, command names
// and watched paths are interned, so each is stored once however many
// events name it; only the entry name is per event.
type Event struct {
	// TimeNs is when the collector read the event (fanotify carries no
	// timestamp), in nanoseconds since the epoch.
	TimeNs int64
	// ID grows by one per recorded event: osquery's eid.
	ID uint64
	// Mask is the fanotify event mask, FAN_ONDIR included.
	Mask uint64
	// PID is the process that caused the event (0 for an overflow).
	PID int32
	// UID is that process's effective uid; see EffectiveUID.
	UID   uint32
	dir   unique.Handle[string]
	name  string
	comm  unique.Handle[string]
	watch unique.Handle[string]
}

// Path is the path of the object the event is about ("" for an overflow),
// ready for display.
func (e *Event) Path() string {
	if e.name == "" {
		return e.dir.Value()
	}
	return joinName(e.dir.Value(), e.name)
}

// Process is the command name of the process, "" when it exited first.
func (e *Event) Process() string { return e.comm.Value() }

// WatchPath is the configured path whose subtree the event is in.
func (e *Event) WatchPath() string { return e.watch.Value() }

// EffectiveUID returns the uid and whether it could be read.
func (e *Event) EffectiveUID() (uint32, bool) { return e.UID, e.UID != unknownUID }

// Overflow reports the kernel's queue-overflow event: events were lost.
func (e *Event) Overflow() bool { return e.Mask&unix.FAN_Q_OVERFLOW != 0 }

// actionNames lists the mask bits in the order Action prints them.
var actionNames = []struct {
	bit  uint64
	name string
}{
	{unix.FAN_ACCESS, "ACCESS"},
	{unix.FAN_OPEN, "OPEN"},
	{unix.FAN_OPEN_EXEC, "OPEN_EXEC"},
	{unix.FAN_CREATE, "CREATE"},
	{unix.FAN_MODIFY, "MODIFY"},
	{unix.FAN_ATTRIB, "ATTRIB"},
	{unix.FAN_CLOSE_WRITE, "CLOSE_WRITE"},
	{unix.FAN_CLOSE_NOWRITE, "CLOSE_NOWRITE"},
	{unix.FAN_MOVED_FROM, "MOVED_FROM"},
	{unix.FAN_MOVED_TO, "MOVED_TO"},
	{unix.FAN_DELETE, "DELETE"},
	{unix.FAN_DELETE_SELF, "DELETE_SELF"},
	{unix.FAN_MOVE_SELF, "MOVE_SELF"},
	{unix.FAN_Q_OVERFLOW, "OVERFLOW"},
	{unix.FAN_ONDIR, "ONDIR"},
}

// Action names the event's mask bits, e.g. "MODIFY|CLOSE_WRITE" or
// "CREATE|ONDIR".
func (e *Event) Action() string {
	var names []string
	for _, a := range actionNames {
		if e.Mask&a.bit != 0 {
			names = append(names, a.name)
		}
	}
	return strings.Join(names, "|")
}

// eventRing keeps the newest events up to a fixed count, dropping the
// oldest. It grows on demand so an idle collector costs no memory.
type eventRing struct {
	events []Event
	head   int // index of the oldest event once the ring has wrapped
	max    int
}

// push appends e and reports whether the oldest event was dropped for it.
func (r *eventRing) push(e Event) (dropped bool) {
	if len(r.events) < r.max {
		r.events = append(r.events, e)
		return false
	}
	r.events[r.head] = e
	r.head = (r.head + 1) % r.max
	return true
}

func (r *eventRing) len() int { return len(r.events) }

// at returns the i-th oldest event.
func (r *eventRing) at(i int) *Event {
	return &r.events[(r.head+i)%len(r.events)]
}

// dropOlderThan removes the events read before minTimeNs. Events arrive in
// reading order, so they are a prefix.
func (r *eventRing) dropOlderThan(minTimeNs int64) {
	n := 0
	for n < r.len() && r.at(n).TimeNs < minTimeNs {
		n++
	}
	if n == 0 {
		return
	}
	kept := make([]Event, 0, max(r.len()-n, 0))
	for i := n; i < r.len(); i++ {
		kept = append(kept, *r.at(i))
	}
	r.events, r.head = kept, 0
}
