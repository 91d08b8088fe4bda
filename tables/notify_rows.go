package tables

import (
	"context"
	"slices"
	"strconv"

	"github.com/moby/sys/mountinfo"
	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// What the fanotify_groups, fanotify_marks, inotify_instances and
// inotify_watches tables share: one snapshot per query, the pid and id
// pushdown, and the holder columns.

// notifyQuery is a query on one of the four tables, with its pushdown.
type notifyQuery struct {
	snap   *fanotify.Snapshot
	q      QueryContext
	idCol  string
	pids   []int64
	byPID  bool
	ids    []string
	byID   bool
	groups []*fanotify.Group
}

// newNotifyQuery takes the shared snapshot, with the marks of subsystem
// parsed when the query shows them, or only counted. The snapshot always
// covers the whole host, so that group ids (the lowest-pid holder) and
// primary_holder do not depend on the pids a query asks for: constraints
// only skip rows. A query constrained to some pids or groups has the marks
// of those groups read again (Group.Marks) rather than every mark on the
// host parsed and kept. Unless the query shows or constrains which group
// an fd holds (groups), each fd is a group of its own (Snapshot.FDGroups):
// matching fds to open files takes system calls COUNT(*) has no use for.
func newNotifyQuery(ctx context.Context, env *Env, q QueryContext, subsystem, idCol string, marks, groups bool) (*notifyQuery, error) {
	nq := &notifyQuery{q: q, idCol: idCol}
	nq.pids, nq.byPID = q.IntEquals("pid")
	nq.ids, nq.byID = q.Equals(idCol)
	snap, err := env.Usage.Snapshot(ctx, procfs.ReadsOf(subsystem, marks && !nq.byPID && !nq.byID))
	if err != nil {
		return nil, err
	}
	nq.snap = snap
	if groups || nq.byID {
		nq.groups = snap.Groups(subsystem)
	} else {
		nq.groups = snap.FDGroups(subsystem)
	}
	return nq, nil
}

// showsGroup tells that a query on a per-mark table shows which group each
// row's fd holds.
func showsGroup(q QueryContext, idCol string) bool {
	return q.Uses(idCol) || q.Uses("primary_holder")
}

// wantGroup applies the id constraint.
func (nq *notifyQuery) wantGroup(g *fanotify.Group) bool {
	return !nq.byID || MatchesText(nq.ids, g.ID)
}

// wantPID applies the pid constraint.
func (nq *notifyQuery) wantPID(pid int) bool {
	return !nq.byPID || slices.Contains(nq.pids, int64(pid))
}

// wantsHolder tells that the query wants a row of one of g's holders.
func (nq *notifyQuery) wantsHolder(g *fanotify.Group) bool {
	return nq.wantGroup(g) && slices.ContainsFunc(g.Holders, func(h fanotify.Holder) bool { return nq.wantPID(h.PID) })
}

// identityColumn is a column whose value may come from a holder's
// identity.
type identityColumn[T any] struct {
	column[T]
	// part is the part of the holders' identity the value comes from (0
	// for none), read for the holders a query shows when it shows the
	// column.
	part fanotify.IdentityParts
}

// holderColumn is a column of the per-mark tables read from the holder.
type holderColumn = identityColumn[fanotify.Holder]

// groupColumn is a column of the per-group tables read from the group's
// primary holder (Holders[0]) or charge.
type groupColumn = identityColumn[*fanotify.Group]

func identityDefinitions[T any](cols []identityColumn[T]) []table.ColumnDefinition {
	defs := make([]table.ColumnDefinition, len(cols))
	for i, c := range cols {
		defs[i] = c.def
	}
	return defs
}

// usedColumns returns the columns of cols the query reads, and the parts of
// the holders' identities they show.
func usedColumns[T any](q QueryContext, cols []identityColumn[T]) (used []identityColumn[T], parts fanotify.IdentityParts) {
	for _, c := range cols {
		if q.Uses(c.def.Name) {
			used = append(used, c)
			parts |= c.part
		}
	}
	return used, parts
}

var holderColumns = []holderColumn{
	{column[fanotify.Holder]{bigint("pid", "Process holding the fd", index),
		func(h fanotify.Holder) string { return strconv.Itoa(h.PID) }}, 0},
	{column[fanotify.Holder]{text("process", "Command name of the process"),
		func(h fanotify.Holder) string { return h.Comm }}, fanotify.Details},
	{column[fanotify.Holder]{bigint("uid", "Effective uid of the process, as the extension's user namespace sees it (the owner of /proc/PID)"),
		func(h fanotify.Holder) string { return formatUint(uint64(h.EUID)) }}, fanotify.Owner},
	{column[fanotify.Holder]{bigint("user_ns", "User namespace of the process (inode of /proc/PID/ns/user)"),
		func(h fanotify.Holder) string { return formatUint(h.UserNS) }}, fanotify.Owner},
	{column[fanotify.Holder]{bigint("mnt_ns", "Mount namespace of the process (inode of /proc/PID/ns/mnt)"),
		func(h fanotify.Holder) string { return formatUint(h.MntNS) }}, fanotify.Details},
	{column[fanotify.Holder]{text("cgroup", "Cgroup of the process"),
		func(h fanotify.Holder) string { return h.Cgroup }}, fanotify.Details},
	{column[fanotify.Holder]{bigint("fd", "The fd through which the process holds the group"),
		func(h fanotify.Holder) string { return strconv.Itoa(h.FD) }}, 0},
}

// groupRows is a row of every group the query wants: the columns of its
// primary holder the query reads (see groupHolderColumns), then own's.
// pid constrains the primary holder, as the per-group tables show it.
func (nq *notifyQuery) groupRows(own func(*fanotify.Group, Values)) []Values {
	used, parts := usedColumns(nq.q, groupHolderColumns)
	var rows []Values
	for _, g := range nq.groups {
		if !nq.wantGroup(g) || !nq.wantPID(g.Holders[0].PID) {
			continue
		}
		g.Holder(0, parts)
		row := make(Values)
		for _, c := range used {
			row[c.def.Name] = c.value(g)
		}
		own(g, row)
		rows = append(rows, row)
	}
	return rows
}

// groupHolderColumns are the primary-holder and charge columns of the
// per-group tables. Charge reads the owners itself.
var groupHolderColumns = []groupColumn{
	{column[*fanotify.Group]{integer("holders", "Number of fds holding it, over every process (dup, fork, SCM_RIGHTS)"),
		func(g *fanotify.Group) string { return strconv.Itoa(len(g.Holders)) }}, 0},
	{column[*fanotify.Group]{bigint("pid", "Lowest pid among the holders", index),
		func(g *fanotify.Group) string { return strconv.Itoa(g.Holders[0].PID) }}, 0},
	{column[*fanotify.Group]{text("process", "Command name of that process"),
		func(g *fanotify.Group) string { return g.Holders[0].Comm }}, fanotify.Details},
	{column[*fanotify.Group]{bigint("uid", "Effective uid of that process, as the extension's user namespace sees it (the owner of /proc/PID)"),
		func(g *fanotify.Group) string { return formatUint(uint64(g.Holders[0].EUID)) }}, fanotify.Owner},
	{column[*fanotify.Group]{text("cgroup", "Cgroup of that process"),
		func(g *fanotify.Group) string { return g.Holders[0].Cgroup }}, fanotify.Details},
	{column[*fanotify.Group]{bigint("charged_uid", "uid charged against the per-user limits, as charged_user_ns sees it (root of a rootless container is 0, not its host uid): the holder's effective uid, an estimate (the creator is not visible in /proc)"),
		func(g *fanotify.Group) string { return formatUint(uint64(g.Charge().UID)) }}, 0},
	{column[*fanotify.Group]{bigint("charged_user_ns", "User namespace charged: the holder's; each namespace's owner is charged too in the namespace above (fanotify_limits shows every level)"),
		func(g *fanotify.Group) string { return formatUint(g.Charge().UserNS) }}, 0},
}

// markCount renders a count of g's marks, NULL when its fdinfo did not parse.
func markCount(g *fanotify.Group, n int) string {
	if g.ParseErr != nil {
		return ""
	}
	return strconv.Itoa(n)
}

func formatUint(v uint64) string { return strconv.FormatUint(v, 10) }

// markTally counts every mark of a snapshot once: mount marks by mount ID,
// the others by filesystem, since they sit on its superblock or inodes.
type markTally struct {
	byMount map[uint64]int
	byDev   map[procfs.Dev]mountMarks
}

// markCounts tallies the marks of the shared snapshot for mount_points.
// Walking every group's fdinfo is costly, so it runs only when the query
// reads a count column.
func markCounts(ctx context.Context, env *Env) (*markTally, error) {
	snap, err := env.Usage.Snapshot(ctx, procfs.AllMarks)
	if err != nil {
		return nil, err
	}
	t := &markTally{byMount: make(map[uint64]int), byDev: make(map[procfs.Dev]mountMarks)}
	for _, groups := range [][]*fanotify.Group{snap.Fanotify(), snap.Inotify()} {
		for _, g := range groups {
			for m := range g.Marks(ctx) {
				t.add(m)
			}
		}
	}
	return t, nil
}

func (t *markTally) add(m procfs.Mark) {
	c := t.byDev[m.Dev]
	switch m.Kind {
	case procfs.MarkMount:
		t.byMount[m.MountID]++
		return
	case procfs.MarkFilesystem:
		c.fanotifyFS++
	case procfs.MarkInode:
		c.fanotifyInode++
	case procfs.InotifyWatch:
		c.inotifyWatches++
	default:
		return
	}
	t.byDev[m.Dev] = c
}

// forMount returns the counts of one mount: its own mount marks, and the
// marks of its filesystem (the same on every mount of the device).
func (t *markTally) forMount(m *mountinfo.Info) mountMarks {
	c := t.byDev[procfs.Dev{Major: uint32(m.Major), Minor: uint32(m.Minor)}]
	c.fanotifyMount = t.byMount[uint64(m.ID)]
	return c
}
