package tables

import (
	"context"
	"maps"
	"slices"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// fanotifyMarks lists every mark once per fd holding its group, so a
// process's view is complete; SUM(primary_holder) counts each mark once.
func fanotifyMarks(env *Env) *Table {
	return &Table{
		Name:        "fanotify_marks",
		Description: "fanotify marks, one row per mark per fd holding the group (one row of type none for a group without marks).",
		Columns: markTableColumns(
			text("group_id", "The group: pid:fd of its lowest-pid holder, as in fanotify_groups", index),
			"SUM(primary_holder) counts each mark once",
			"Inode: the file its handle resolves to; mount: the mount point in the holder's namespace; filesystem: a mount of the device. Empty when unknown",
			fanotifyMarkColumns),
		Generate: func(ctx context.Context, q QueryContext) ([]Row, error) {
			nq, err := newNotifyQuery(ctx, env, q, procfs.SubsystemFanotify, "group_id")
			if err != nil {
				return nil, err
			}
			return nq.markRows(fanotifyMarkColumns, noMarkType), nil
		},
	}
}

// markColumn is a column computed from one mark alone.
type markColumn struct {
	def   table.ColumnDefinition
	value func(procfs.Mark) string
}

// markTableColumns lists the columns of a per-mark table: the holder's,
// the group id, primary_holder, the mark's own and path.
func markTableColumns(idCol table.ColumnDefinition, sumNote, pathDesc string, cols []markColumn) []table.ColumnDefinition {
	var defs []table.ColumnDefinition
	for _, c := range holderColumns {
		defs = append(defs, c.def)
	}
	defs = append(defs, idCol,
		integer("primary_holder", "1 on the rows of the lowest-pid holder (lowest fd on ties): "+sumNote))
	for _, c := range cols {
		defs = append(defs, c.def)
	}
	return append(defs, text("path", pathDesc))
}

var fanotifyMarkColumns = []markColumn{
	{text("mark_type", "inode, mount, filesystem or mntns; none for a group without marks (one row), unknown when its fdinfo did not parse"),
		func(m procfs.Mark) string { return m.Kind.String() }},
	{bigint("inode", "Inode number (inode marks)"), func(m procfs.Mark) string {
		return ifKind(m, formatUint(m.Inode), procfs.MarkInode)
	}},
	{text("device", "major:minor of the filesystem (inode and filesystem marks)"), func(m procfs.Mark) string {
		return ifKind(m, m.Dev.String(), procfs.MarkInode, procfs.MarkFilesystem)
	}},
	{bigint("mount_id", "Mount ID as in mountinfo (mount marks)"), func(m procfs.Mark) string {
		return ifKind(m, formatUint(m.MountID), procfs.MarkMount)
	}},
	{bigint("marked_mnt_ns", "Inode of the marked mount namespace (mntns marks)"), func(m procfs.Mark) string {
		return ifKind(m, formatUint(m.MntNS), procfs.MarkMntNS)
	}},
	{bigint("mask", "Events the mark reports"), func(m procfs.Mark) string { return formatUint(uint64(m.Mask)) }},
	{text("mask_names", "Events by name"), func(m procfs.Mark) string { return fanotify.FanotifyMaskNames(m.Mask) }},
	{bigint("ignored_mask", "Events the mark ignores"), func(m procfs.Mark) string { return formatUint(uint64(m.IgnoredMask)) }},
	{text("ignored_mask_names", "Ignored events by name"), func(m procfs.Mark) string { return fanotify.FanotifyMaskNames(m.IgnoredMask) }},
	{bigint("mark_flags", "Flags kept on the mark (mflags)"), func(m procfs.Mark) string { return formatUint(uint64(m.Flags)) }},
	{text("mark_flags_names", "Mark flags by name"), func(m procfs.Mark) string { return fanotify.MarkFlagNames(m.Flags) }},
}

// withRoom copies base into a map sized for extra more columns, so that
// filling a row never grows its map.
func withRoom(base Row, extra int) Row {
	row := make(Row, len(base)+extra)
	maps.Copy(row, base)
	return row
}

// ifKind is v for marks of the given kinds, NULL for the others.
func ifKind(m procfs.Mark, v string, kinds ...procfs.MarkKind) string {
	if slices.Contains(kinds, m.Kind) {
		return v
	}
	return ""
}

// noMarkType is the mark_type of the one row of a group without marks.
func noMarkType(g *fanotify.Group) string {
	if g.ParseErr != nil {
		return "unknown"
	}
	return "none"
}

// markRows emits, for every group and holder the query wants, one row per
// mark, and for a group without marks one row whose mark_type is
// noMarks(g) (no row when noMarks is nil). Only the columns the query reads
// are computed: SELECT COUNT(*) decodes no mark, builds empty rows and
// resolves no path.
func (nq *notifyQuery) markRows(cols []markColumn, noMarks func(*fanotify.Group) string) []Row {
	used := slices.DeleteFunc(slices.Clone(cols), func(c markColumn) bool { return !nq.q.Uses(c.def.Name) })
	holder := slices.DeleteFunc(slices.Clone(holderColumns), func(c holderColumn) bool { return !nq.q.Uses(c.def.Name) })
	if slices.ContainsFunc(holder, func(c holderColumn) bool { return c.identity }) {
		nq.snap.ReadIdentities()
	}
	withPath := nq.q.Uses("path")
	decode := len(used) > 0 || withPath
	// Columns each mark adds to its holder's; none for COUNT(*), whose
	// empty rows then cost no map storage.
	room := len(used)
	if withPath {
		room++
	}
	var rows []Row
	for _, g := range nq.groups {
		if !nq.wantGroup(g) {
			continue
		}
		var marks []procfs.Mark
		if decode {
			marks = g.Info.Marks()
		}
		for i, h := range g.Holders {
			if !nq.wantPID(h.PID) {
				continue
			}
			base := nq.holderRow(g, i, holder)
			if g.Info.MarkCount == 0 && noMarks != nil {
				row := withRoom(base, len(used))
				for _, c := range used {
					row[c.def.Name] = ""
				}
				if nq.q.Uses("mark_type") {
					row["mark_type"] = noMarks(g)
				}
				rows = append(rows, row)
			}
			var paths []string
			if withPath {
				paths = nq.snap.MarkPaths(h, marks)
			}
			for j := range g.Info.MarkCount {
				row := withRoom(base, room)
				for _, c := range used {
					row[c.def.Name] = c.value(marks[j])
				}
				if withPath {
					row["path"] = paths[j]
				}
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// holderRow holds the columns the query reads of g's i-th holder: cols,
// the group id and primary_holder.
func (nq *notifyQuery) holderRow(g *fanotify.Group, i int, cols []holderColumn) Row {
	row := make(Row, len(cols)+2)
	h := g.Holders[i]
	for _, c := range cols {
		row[c.def.Name] = c.value(h)
	}
	if nq.q.Uses(nq.idCol) {
		row[nq.idCol] = g.ID
	}
	if nq.q.Uses("primary_holder") {
		row["primary_holder"] = boolInt(i == 0)
	}
	return row
}
