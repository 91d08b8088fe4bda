package fanotify

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// Collector records the fanotify events under the configured paths into a
// bounded in-memory buffer for the fanotify_events table. It holds one
// notification-class group: it never makes a writer wait.
type Collector struct {
	cfg     config.Collector
	log     *slog.Logger
	proc    procfs.FS
	started time.Time

	// group is the fanotify fd, -1 when fanotify_init failed (every watch
	// then says why). stop is an eventfd that Stop signals to end the reader.
	group      int
	stop       int
	groupFlags uint
	fidMode    bool
	// eventMask holds the configured event bits the group can report.
	eventMask uint64
	watches   []*watch
	excludes  []string
	// mountFDs holds, per marked filesystem (by fsid), an fd on each mount
	// of it that a watched path is on: the reference open_by_handle_at
	// needs to turn handles into paths.
	mountFDs map[[8]byte][]mountFD

	done     chan struct{}
	stopOnce sync.Once
	// beforeRead, when set, runs before each read of the group: tests hold
	// the reader back with it to overflow the kernel queue.
	beforeRead func()

	mu         sync.Mutex
	ring       eventRing
	nextID     uint64
	total      uint64
	overflows  uint64
	dropped    uint64
	unresolved uint64
	readErr    string
}

// mountFD is an fd on a mount, and the mount's ID.
type mountFD struct {
	fd  int
	mnt uint64
}

// Stats is the collector's state as the fanotify_collector table shows it.
type Stats struct {
	Watches []WatchStatus
	// GroupFlags names the fanotify_init flags, e.g.
	// "FAN_CLASS_NOTIF|FAN_CLOEXEC|FAN_NONBLOCK|FAN_REPORT_FID|...".
	GroupFlags                      string
	EventsTotal, Overflows, Dropped uint64
	// Unresolved counts events dropped because their path could not be read
	// back: deleted directories, or, in a user namespace, directories the
	// kernel does not let this process open by handle.
	Unresolved          uint64
	Buffered, BufferMax int
	Started             time.Time
	// ReadError is the last error reading the group, "" if none.
	ReadError string
}

// collectorOptions are knobs for tests.
type collectorOptions struct {
	// fdMode forces a group without file handles, as on kernels before 5.9.
	fdMode     bool
	beforeRead func()
}

// StartCollector creates the group, marks the configured paths and starts
// reading. It never fails as a whole: a path that cannot be watched, or a
// group that cannot be created, shows in Stats with the reason.
func StartCollector(cfg config.Collector, log *slog.Logger) *Collector {
	return startCollector(cfg, log, collectorOptions{})
}

func startCollector(cfg config.Collector, log *slog.Logger, opts collectorOptions) *Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		cfg:        cfg,
		log:        log,
		group:      -1,
		stop:       -1,
		proc:       procfs.NewFS(procfs.DefaultRoot),
		started:    time.Now(),
		mountFDs:   map[[8]byte][]mountFD{},
		done:       make(chan struct{}),
		beforeRead: opts.beforeRead,
		ring:       eventRing{max: max(cfg.BufferMax, 1)}, // config.Parse rejects less
	}
	c.fidMode = !opts.fdMode && featureSupport("FAN_REPORT_NAME") != Unsupported &&
		featureSupport("FAN_REPORT_FID") != Unsupported
	c.excludes = matchPaths(cfg.ExcludePaths)
	if err := c.initGroup(); err != nil {
		c.log.Error("fanotify collector not started", "err", err)
		c.failAll(err.Error())
		close(c.done)
		return c
	}
	c.markAll()
	for _, w := range c.watches {
		if w.Status != StatusActive {
			c.log.Warn("fanotify collector: path not fully watched", "path", w.Path, "status", w.Status, "error", w.Error, "lost_events", w.LostEvents)
		}
	}
	go c.readLoop()
	return c
}

// initGroup creates the notification-class group, with file handles
// (FID mode) where the kernel has them, else with an fd per event.
func (c *Collector) initGroup() error {
	c.groupFlags = baseInitFlags
	if c.fidMode {
		c.groupFlags |= unix.FAN_REPORT_DFID_NAME | unix.FAN_REPORT_FID
	}
	fd, err := unix.FanotifyInit(c.groupFlags, eventFileFlags)
	if err != nil {
		c.groupFlags = 0
		note := ""
		if errors.Is(err, unix.EMFILE) {
			note = limitNote(c.proc, procfs.FanotifyGroups) + " or RLIMIT_NOFILE"
		}
		return fmt.Errorf("fanotify_init: %s%s", errnoName(err), note)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		c.groupFlags = 0
		return fmt.Errorf("eventfd: %w", err)
	}
	c.group, c.stop = fd, stop
	c.eventMask = configuredMask(c.cfg.Events)
	if !c.fidMode {
		c.eventMask &= fdEvents
	}
	return nil
}

func (c *Collector) failAll(reason string) {
	for _, p := range c.cfg.Paths {
		c.watches = append(c.watches, &watch{WatchStatus: WatchStatus{Path: p, Status: StatusFailed, Error: reason}})
	}
}

// Stop ends the reader and closes the group. It is safe to call more than
// once.
func (c *Collector) Stop() {
	c.stopOnce.Do(func() {
		if c.group < 0 {
			return
		}
		unix.Write(c.stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
		<-c.done
		unix.Close(c.group)
		unix.Close(c.stop)
		for _, mounts := range c.mountFDs {
			for _, m := range mounts {
				unix.Close(m.fd)
			}
		}
	})
}

// Events returns the buffered events that keep accepts, oldest first, after
// dropping those older than collector.expiry_s.
func (c *Collector) Events(keep func(*Event) bool) []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ring.dropOlderThan(time.Now().Add(-time.Duration(c.cfg.ExpiryS) * time.Second).UnixNano())
	var out []Event
	for i := range c.ring.len() {
		if e := c.ring.at(i); keep(e) {
			out = append(out, *e)
		}
	}
	return out
}

// Stats returns the collector's configuration outcome and counters.
func (c *Collector) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{
		GroupFlags:  c.groupFlagNames(),
		EventsTotal: c.total,
		Overflows:   c.overflows,
		Dropped:     c.dropped,
		Unresolved:  c.unresolved,
		Buffered:    c.ring.len(),
		BufferMax:   c.cfg.BufferMax,
		Started:     c.started,
		ReadError:   c.readErr,
	}
	for _, w := range c.watches {
		s.Watches = append(s.Watches, w.WatchStatus)
	}
	return s
}

// record stores events read at one time, numbering them, and counts those
// dropped for want of a path.
func (c *Collector) record(events []Event, unresolved uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unresolved += unresolved
	for _, e := range events {
		c.nextID++
		e.ID = c.nextID
		c.total++
		if e.Overflow() {
			c.overflows++
		}
		if c.ring.push(e) {
			c.dropped++
		}
	}
}

// groupFlagNames names the group's init flags, "" when there is no group.
func (c *Collector) groupFlagNames() string {
	if c.group < 0 {
		return ""
	}
	return GroupFlagNames(uint32(c.groupFlags))
}

func (c *Collector) setReadError(err error) {
	c.log.Warn("fanotify collector", "err", err)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readErr = err.Error()
}

// limitNote names the limit l and the value this process is held to: the
// lower of the initial namespace's sysctl and this user namespace's own.
func limitNote(proc procfs.FS, l procfs.Limit) string {
	s, err := proc.ReadSysctls()
	if err != nil {
		return ""
	}
	v, _ := s.Lookup(l)
	name, value := l.Name, v.Value
	if own, ok := s.Own[l]; ok && own < value {
		name, value = l.UserFile, own
	}
	return fmt.Sprintf(" (%s=%d)", name, value)
}
