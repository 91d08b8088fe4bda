package fanotify

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// SnapshotMaxAge is how long one walk serves later queries once it has
// finished. Reading fdinfo formats every mark under the group's lock and
// stalls its owner, so queries arriving together share one walk, also on a
// host whose walk takes longer than that: a join calls its inner table once
// per row of the outer one.
const SnapshotMaxAge = time.Second

// KeptMarks is how many marks a snapshot keeps parsed, about 40 MB of them:
// osquery's watchdog stops an extension over 200 MB, and the watches of a
// host are bounded only by sysctls. Past it, a snapshot counts marks, and
// Group.Marks reads those of the groups a query shows again.
const KeptMarks = 1 << 20

// Scanner takes Snapshots of fanotify and inotify usage for every table and
// the report. Concurrent callers share one walk, and a walk serves callers
// for SnapshotMaxAge after it finished. It is safe for concurrent use.
type Scanner struct {
	fs     procfs.FS
	budget time.Duration
	keep   int
	log    *onceLog
	// take reads a snapshot (Scanner.read; tests slow it down or break it).
	take func(ctx context.Context, need procfs.Reads, from *Snapshot) (*Snapshot, error)

	mu      sync.Mutex
	last    *Snapshot
	lastAt  time.Time // when the walk of last ended
	pending *scan
}

// scan is one walk in progress; done closes when snap and err are set.
type scan struct {
	done chan struct{}
	snap *Snapshot
	err  error
}

// NewScanner returns a Scanner reading fs. A walk longer than budget stops
// early and yields a Snapshot marked incomplete; one keeps about keep marks
// parsed at most (KeptMarks in production).
func NewScanner(fs procfs.FS, budget time.Duration, keep int, log *slog.Logger) *Scanner {
	s := &Scanner{fs: fs, budget: budget, keep: keep, log: &onceLog{Logger: log}}
	s.take = s.read
	return s
}

// onceLog logs each distinct warning of warnOnce once: every snapshot of a
// host where kcmp is refused would repeat the same one, query after query.
type onceLog struct {
	*slog.Logger
	said sync.Map
}

func (l *onceLog) warnOnce(msg string) {
	if _, said := l.said.LoadOrStore(msg, true); !said {
		l.Warn(msg)
	}
}

// Snapshot returns a snapshot of a walk that ended at most SnapshotMaxAge
// ago, which read what need asks of each subsystem's fdinfo, joining the
// walk in progress or starting one. A fresh snapshot that read less is
// completed from its own walk: no second pass over every fd. ctx bounds
// only the wait: the walk itself is bounded by the budget and keeps going
// for the other callers.
func (s *Scanner) Snapshot(ctx context.Context, need procfs.Reads) (*Snapshot, error) {
	for {
		s.mu.Lock()
		fresh := s.last != nil && time.Since(s.lastAt) < SnapshotMaxAge
		if fresh && s.last.Covers(need) {
			snap := s.last
			s.mu.Unlock()
			return snap, nil
		}
		if s.pending == nil {
			s.pending = &scan{done: make(chan struct{})}
			from := s.last
			if !fresh {
				from = nil
			}
			go s.walk(s.pending, need, from)
		}
		sc := s.pending
		s.mu.Unlock()

		select {
		case <-sc.done:
			if sc.err != nil || sc.snap.Covers(need) {
				return sc.snap, sc.err
			}
			// That walk read less than need: complete it.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// walk takes a snapshot for sc and publishes it. A panic in reading /proc
// fails this walk's callers, and the next query walks again: the
// extension, on which osqueryd's queries wait, keeps serving.
func (s *Scanner) walk(sc *scan, need procfs.Reads, from *Snapshot) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("walk of /proc panicked", "panic", p, "stack", string(debug.Stack()))
			sc.snap, sc.err = nil, fmt.Errorf("internal error in the walk of /proc: %v", p)
		}
		s.mu.Lock()
		if sc.err == nil {
			s.last = sc.snap
			// A completion reads more of the fds its walk found, and is
			// as old as that walk.
			if from == nil {
				s.lastAt = time.Now()
			}
		}
		s.pending = nil
		s.mu.Unlock()
		close(sc.done)
	}()
	sc.snap, sc.err = s.take(context.Background(), need, from)
	if sc.err == nil && sc.snap.TimedOut {
		s.log.Warn("fanotify/inotify scan ran out of its budget: usage counts are incomplete",
			"budget", s.budget, "fds_found", len(sc.snap.walk.FDs))
	}
}

// read takes a snapshot reading what need asks, within the budget: from a
// walk of /proc, or from the fds that snapshot from found when it is not
// nil.
func (s *Scanner) read(ctx context.Context, need procfs.Reads, from *Snapshot) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, s.budget)
	defer cancel()
	if from != nil {
		return from.completed(ctx, need), nil
	}
	s.mu.Lock()
	prev := s.last
	s.mu.Unlock()
	taken := time.Now()
	walk, err := s.fs.WalkNotifyFDs(ctx, need, s.keep, prev.longReads())
	if err != nil {
		return nil, err
	}
	return newSnapshot(s.fs, s.log, walk, taken, prev, processesOf(walk)), nil
}
