package fanotify

import (
	"context"
	"iter"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// Group flags read from the fdinfo group line (fanotify_init flags).
const (
	flagUnlimitedQueue = 0x10 // FAN_UNLIMITED_QUEUE
	flagUnlimitedMarks = 0x20 // FAN_UNLIMITED_MARKS: marks are not charged
)

// Snapshot is one walk of /proc: every fanotify group and inotify instance
// on the host, deduplicated, with its holders, marks and charge. A Snapshot
// is shared by concurrent queries and must not be modified; its methods are
// safe for concurrent use.
type Snapshot struct {
	// Taken is when the walk started.
	Taken time.Time
	// Complete is false when the walk ran out of its time budget, some
	// process could not be read, or some fdinfo did not parse: counts are
	// then lower bounds.
	Complete bool
	// TimedOut is set when the time budget cut the walk short.
	TimedOut bool
	// Visible is false when some processes' fds could not be read (no
	// permission): their groups and instances are missing.
	Visible bool
	paths   pathResolver

	fs        procfs.FS
	log       *onceLog
	walk      *procfs.NotifyWalk
	processes map[int]*process // by pid, shared with the snapshots completing this one
	// Set by group: the groups of each subsystem, and whether kcmp told
	// every fd's.
	grouped           sync.Once
	fanotify, inotify []*Group
	exact             bool
	// ranks are the fds' files' ranks in the kernel's order (see dedup),
	// once grouped, with those it was given for the fds its walk did not
	// read; until then those of the last snapshot before this one that
	// grouped, if any: the order this one tries first.
	ranks atomic.Pointer[fileRanks]
	// Set by FDGroups: each fd a group of its own.
	fdGrouped             sync.Once
	fdFanotify, fdInotify []*Group
	owners                sync.Once
	// Set by ReadOwners; see Ancestors, Untranslated and ProcessIn.
	ancestors    map[uint64][]Charge
	untranslated map[uint64]bool
	members      map[uint64]int
}

// Group is one fanotify group or inotify instance: one open file, however
// many fds and processes hold it.
type Group struct {
	// ID is "pid:fd" of the primary holder; it does not depend on which
	// pids a query asks for.
	ID string
	// Subsystem is procfs.SubsystemFanotify or procfs.SubsystemInotify.
	Subsystem string
	// Holders are the fds holding the group ordered by pid, then fd;
	// Holders[0] is the primary holder.
	Holders []Holder
	// Info is the parsed fdinfo: group flags and marks (fanotify) or
	// watches (inotify). Empty when ParseErr is set.
	Info     procfs.Fdinfo
	ParseErr error

	first   *procfs.NotifyFD // the primary holder's fd, to read its marks again
	snap    *Snapshot
	charge  Charge
	charged bool // the primary holder's identity could be read
}

// Holder is one fd through which a process holds a group. Only PID of its
// Identity is set until Group.Holder or the snapshot's ReadOwners read the
// rest; the holders of one process share its Identity.
type Holder struct {
	*process
	FD int
}

// process is a process holding groups. The snapshots of one walk share it,
// so that each part of its identity is read once, by the first query that
// needs it.
type process struct {
	procfs.Identity
	owner, details identityPart
}

// identityPart is a part of a process's identity, read once; ok tells it
// was read without error.
type identityPart struct {
	once sync.Once
	ok   bool
}

func (p *identityPart) read(read func() error) bool {
	p.once.Do(func() { p.ok = read() == nil })
	return p.ok
}

// processesOf makes a process of every pid holding an fd the walk found,
// whether it read the fd's fdinfo or not.
func processesOf(walk *procfs.NotifyWalk) map[int]*process {
	processes := make(map[int]*process)
	for _, fds := range [][]procfs.NotifyFD{walk.FDs, walk.Unread} {
		for _, fd := range fds {
			if processes[fd.PID] == nil {
				processes[fd.PID] = &process{Identity: procfs.Identity{PID: fd.PID}}
			}
		}
	}
	return processes
}

// IdentityParts are the parts of a holder's identity, read apart because
// each costs system calls of its own: a query reads the parts it shows.
type IdentityParts uint8

const (
	// Owner is the effective uid and user namespace (procfs.FS.ReadOwner).
	Owner IdentityParts = 1 << iota
	// Details are the command name, mount namespace and cgroup
	// (procfs.FS.ReadDetails).
	Details
)

// Holder returns the i-th holder with the parts of its identity read: that
// process's alone, once however many queries of the snapshot's walk ask, so
// that a query showing the holders of one pid among thousands reads one.
func (g *Group) Holder(i int, parts IdentityParts) Holder {
	h := g.Holders[i]
	if parts&Owner != 0 {
		readOwner(g.snap.fs, h.process)
	}
	if parts&Details != 0 {
		readDetails(g.snap.fs, h.process)
	}
	return h
}

// Primary is the lowest-pid holder (lowest fd on ties), with its identity.
func (g *Group) Primary() Holder { return g.Holder(0, Owner|Details) }

// Charge is what the group is charged to: a user namespace and the
// effective uid as that namespace sees it (0 for root of a rootless
// container, whatever uid the host reads for it). The creator is not
// visible in /proc, so the primary holder's effective uid and user
// namespace stand in for it: an estimate, wrong when the creator changed
// uid afterwards or passed the fd to another user's process.
// Zero when the primary holder exited before its identity was read.
func (g *Group) Charge() Charge {
	g.snap.ReadOwners()
	return g.charge
}

// Marks yields the group's marks (or watches): those its walk kept, or,
// when the walk only counted them (past the marks a snapshot keeps, see
// KeptMarks), those of its primary holder's fdinfo read again now; none if
// that fd was closed since, or if ctx ended first (the query gave up, and
// on a host past KeptMarks a tally would go on reading every group again).
func (g *Group) Marks(ctx context.Context) iter.Seq[procfs.Mark] {
	if g.ParseErr != nil || g.Info.Kept() {
		return g.Info.All()
	}
	none := func(func(procfs.Mark) bool) {}
	if ctx.Err() != nil {
		return none
	}
	again, ok, err := g.snap.fs.ReadNotifyFD(g.first.PID, g.first.FD, g.Subsystem)
	if err != nil || !ok || again.Err != nil {
		return none
	}
	return again.Info.All()
}

// UnlimitedMarks reports a fanotify group created with FAN_UNLIMITED_MARKS.
func (g *Group) UnlimitedMarks() bool {
	return g.Info.HasGroup && g.Info.GroupFlags&flagUnlimitedMarks != 0
}

// UnlimitedQueue reports a fanotify group created with FAN_UNLIMITED_QUEUE.
func (g *Group) UnlimitedQueue() bool {
	return g.Info.HasGroup && g.Info.GroupFlags&flagUnlimitedQueue != 0
}

// ChargedMarks is how many of the group's marks (or watches) count against
// the per-user mark (or watch) limit.
func (g *Group) ChargedMarks() int64 {
	if g.UnlimitedMarks() {
		return 0
	}
	return int64(g.Info.MarkCount)
}

// Direct returns the usage charged where each group was created, keyed by
// Charge (see Group.Charge: the uid is an estimate). Feed it with Ancestors
// to Totals for the usage at every level of the user-namespace tree.
func (s *Snapshot) Direct() map[Charge]Counts {
	s.ReadOwners()
	direct := make(map[Charge]Counts)
	for _, g := range s.Fanotify() {
		if !g.charged {
			continue
		}
		c := direct[g.Charge()]
		c.Groups++
		c.Marks += g.ChargedMarks()
		direct[g.Charge()] = c
	}
	for _, g := range s.Inotify() {
		if !g.charged {
			continue
		}
		c := direct[g.Charge()]
		c.Instances++
		c.Watches += g.ChargedMarks()
		direct[g.Charge()] = c
	}
	return direct
}

// GroupMarks lists every fanotify group's charged marks, for the per-group
// limit of kernels before 5.13.
func (s *Snapshot) GroupMarks() []GroupMarks {
	s.ReadOwners()
	out := make([]GroupMarks, 0, len(s.Fanotify()))
	for _, g := range s.Fanotify() {
		if !g.charged {
			continue
		}
		out = append(out, GroupMarks{ID: g.ID, Charge: g.Charge(), Marks: g.ChargedMarks()})
	}
	return out
}

// newSnapshot keeps the fds of a walk whose fdinfo it read, to group by
// open file when a query asks (Groups, FDGroups). Holders' identities, and
// the charges that depend on them, wait for Group.Holder and ReadOwners;
// processes holds them (see processesOf). The paths prev resolved (nil for
// none) are checked and reused.
func newSnapshot(fs procfs.FS, log *onceLog, walk *procfs.NotifyWalk, taken time.Time, prev *Snapshot, processes map[int]*process) *Snapshot {
	s := &Snapshot{
		Taken:     taken,
		Complete:  walk.Complete(),
		TimedOut:  walk.TimedOut,
		Visible:   walk.Unreadable == 0,
		fs:        fs,
		log:       log,
		walk:      walk,
		processes: processes,
	}
	var prevPaths *pathResolver
	if prev != nil {
		prevPaths = &prev.paths
		s.ranks.Store(prev.ranks.Load())
	}
	s.paths.init(fs, prevPaths)
	return s
}

// Fanotify returns the fanotify groups and Inotify the inotify instances
// (see Groups).
func (s *Snapshot) Fanotify() []*Group { return s.Groups(procfs.SubsystemFanotify) }
func (s *Snapshot) Inotify() []*Group  { return s.Groups(procfs.SubsystemInotify) }

// Groups returns the groups (or instances) of subsystem sub, each open file
// once however many fds hold it, ordered by primary holder (pid, then fd).
// The first call of a snapshot matches its fds to open files (see dedup):
// about log2(groups) kcmp calls an fd, one for the fds whose files keep the
// order the last grouped snapshot found. A query that shows no group's
// identity takes FDGroups instead.
func (s *Snapshot) Groups(sub string) []*Group {
	s.group()
	return ofSubsystem(sub, s.fanotify, s.inotify)
}

// DedupExact is false when kcmp was unavailable or refused, or could not
// be given the walk's pids (a proc of another pid namespace): a group held
// through several fds (dup, fork, SCM_RIGHTS) then counts once per fd
// instead of once.
func (s *Snapshot) DedupExact() bool {
	s.group()
	return s.exact
}

func (s *Snapshot) group() {
	s.grouped.Do(func() {
		if !s.fs.InOwnPidNamespace() {
			// kcmp takes pids of this process's namespace: it would
			// compare other processes' fds, or find none.
			s.log.warnOnce("the pids of this proc are not this process's pid namespace's: a group held through several fds counts once per fd")
			s.fanotify, s.inotify = s.FDGroups(procfs.SubsystemFanotify), s.FDGroups(procfs.SubsystemInotify)
			return
		}
		var hint fileRanks
		if r := s.ranks.Load(); r != nil {
			hint = *r
		}
		groups, exact, ranks := dedup(s.walk.FDs, s.processes, kernelFileOrder, hint)
		s.exact = exact
		// The fds whose fdinfo this walk did not read keep their hint for
		// the snapshot that completes it.
		for _, fd := range s.walk.Unread {
			ref := procfs.FDRef{PID: fd.PID, FD: fd.FD}
			if r, ok := hint[ref]; ok {
				ranks[ref] = r
			}
		}
		s.ranks.Store(&ranks)
		s.fanotify, s.inotify = s.split(groups)
		if !s.exact {
			s.log.warnOnce("kcmp is unavailable or refused: a group held through several fds counts once per fd")
		}
	})
}

// FDGroups returns the fds of subsystem sub each as a group of one holder,
// ordered by pid and fd, without matching fds to open files: a group held
// through several fds is there once for each, with the Info its fd read.
// For the queries that show holders and marks, not groups.
func (s *Snapshot) FDGroups(sub string) []*Group {
	s.fdGrouped.Do(func() {
		groups := make([]*Group, len(s.walk.FDs))
		for i := range s.walk.FDs {
			groups[i] = newGroup(&s.walk.FDs[i], s.processes)
		}
		s.fdFanotify, s.fdInotify = s.split(groups)
	})
	return ofSubsystem(sub, s.fdFanotify, s.fdInotify)
}

// split ties groups to s and sorts them by subsystem, keeping their order.
func (s *Snapshot) split(groups []*Group) (fan, in []*Group) {
	for _, g := range groups {
		g.snap = s
		if g.Subsystem == procfs.SubsystemFanotify {
			fan = append(fan, g)
		} else {
			in = append(in, g)
		}
	}
	return fan, in
}

func ofSubsystem(sub string, fan, in []*Group) []*Group {
	if sub == procfs.SubsystemFanotify {
		return fan
	}
	return in
}

// Covers reports whether the snapshot read what need asks of each
// subsystem: the groups of a subsystem it did not read are missing from
// it, and the marks of one it counted.
func (s *Snapshot) Covers(need procfs.Reads) bool {
	return s.walk.Read&need == need
}

// longReads are the fds whose fdinfo s's walk found long to read; none
// without a snapshot.
func (s *Snapshot) longReads() procfs.LongReads {
	if s == nil {
		return nil
	}
	return procfs.LongReadsOf(s.walk)
}

// completed is the snapshot with what need asks read too, from the fds its
// walk found; it shares s's processes and paths.
func (s *Snapshot) completed(ctx context.Context, need procfs.Reads) *Snapshot {
	walk := s.fs.ReadMore(ctx, s.walk, need)
	return newSnapshot(s.fs, s.log, walk, s.Taken, s, s.processes)
}

// ReadOwners reads every holder's effective uid and user namespace and
// charges each group, once per snapshot: queries that charge nothing skip
// it. Charge, Direct, GroupMarks, Ancestors and Untranslated call it
// themselves. A holder that exited since the walk keeps only its pid, and a
// group whose primary holder did is charged nowhere, as if the walk had
// missed it.
func (s *Snapshot) ReadOwners() {
	s.owners.Do(func() {
		groups := slices.Concat(s.Fanotify(), s.Inotify())
		// Every holder's: the charges put uids in the terms of each user
		// namespace through a process living in it. The parts of an
		// identity are fields of their own: one can be read while the
		// other is.
		for _, g := range groups {
			for i := range g.Holders {
				g.Holder(i, Owner)
			}
		}
		charged := slices.DeleteFunc(groups, func(g *Group) bool { return !readOwner(s.fs, g.Holders[0].process) })
		view := newChargeView(s.fs, charged)
		for _, g := range charged {
			g.charge, g.charged = view.charge(g.Holders[0]), true
		}
		s.ancestors = view.ancestors()
		s.untranslated = view.untranslated
		s.members = view.pids
	})
}

// readOwner and readDetails read a part of p's identity, once however many
// snapshots ask, and report whether it could be read.
func readOwner(fs procfs.FS, p *process) bool {
	return p.owner.read(func() error { return fs.ReadOwner(&p.Identity) })
}

func readDetails(fs procfs.FS, p *process) bool {
	return p.details.read(func() error { return fs.ReadDetails(&p.Identity) })
}

// Ancestors maps each charged user namespace to the charges the kernel
// makes above it: the uid owning the namespace, as its parent sees it, in
// the parent; then the parent's owner in the grandparent, up to the initial
// user namespace (or the one this process runs in). Empty for the initial
// namespace; missing when the namespace could not be opened. See chargeView
// for how uids are put in each level's terms.
func (s *Snapshot) Ancestors() map[uint64][]Charge {
	s.ReadOwners()
	return s.ancestors
}

// Untranslated holds the user namespaces whose charged uids could not be
// put in their own terms (no readable process lives in them): those stay
// as this process reads them.
func (s *Snapshot) Untranslated() map[uint64]bool {
	s.ReadOwners()
	return s.untranslated
}

// ProcessIn returns a process living in user namespace ns, as charging
// found it: a holder, or for a namespace charged above its holders (a
// middle level of nested namespaces), any process living there. ok is
// false for a namespace charged nothing, or where no process lives.
func (s *Snapshot) ProcessIn(ns uint64) (pid int, ok bool) {
	s.ReadOwners()
	pid, ok = s.members[ns]
	return pid, ok
}

// newGroup is the group of fd's open file, with fd its primary holder.
func newGroup(fd *procfs.NotifyFD, processes map[int]*process) *Group {
	return &Group{
		ID:        strconv.Itoa(fd.PID) + ":" + strconv.Itoa(fd.FD),
		Subsystem: fd.Subsystem,
		Holders:   []Holder{{process: processes[fd.PID], FD: fd.FD}},
		Info:      fd.Info,
		ParseErr:  fd.Err,
		first:     fd,
	}
}
