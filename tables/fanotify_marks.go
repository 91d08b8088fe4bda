package tables

import (
	"context"
	"maps"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// fanotifyMarks lists every mark once per fd holding its group, so a
// process's view is complete; SUM(primary_holder) counts each mark once.
func fanotifyMarks(env *Env) *Table {
	cols := append(holderColumns(),
		text("group_id", "The group: pid:fd of its lowest-pid holder, as in fanotify_groups", index),
		integer("primary_holder", "1 on the rows of the group's lowest-pid holder (lowest fd on ties): SUM(primary_holder) counts each mark once"),
		text("mark_type", "inode, mount, filesystem or mntns; none for a group without marks (one row), unknown when its fdinfo did not parse"),
		bigint("inode", "Inode number (inode marks)"),
		text("device", "major:minor of the filesystem (inode and filesystem marks)"),
		bigint("mount_id", "Mount ID as in mountinfo (mount marks)"),
		bigint("marked_mnt_ns", "Inode of the marked mount namespace (mntns marks)"),
		text("path", "Inode: the file its handle resolves to; mount: the mount point in the holder's namespace; filesystem: a mount of the device. Empty when unknown"),
		bigint("mask", "Events the mark reports"),
		text("mask_names", "Events by name"),
		bigint("ignored_mask", "Events the mark ignores"),
		text("ignored_mask_names", "Ignored events by name"),
		bigint("mark_flags", "Flags kept on the mark (mflags)"),
		text("mark_flags_names", "Mark flags by name"),
	)
	return &Table{
		Name:        "fanotify_marks",
		Description: "fanotify marks, one row per mark per fd holding the group (one row of type none for a group without marks).",
		Columns:     cols,
		Generate: func(ctx context.Context, q QueryContext) ([]Row, error) {
			nq, err := newNotifyQuery(ctx, env, q, procfs.SubsystemFanotify, "group_id")
			if err != nil {
				return nil, err
			}
			return nq.markRows("group_id", fanotifyMarkRow, noMarkRow), nil
		},
	}
}

// markRows emits, for every group and holder the query wants, one row per
// mark built by fill, and for a group without marks the row of noMarks
// (none when nil).
func (nq *notifyQuery) markRows(idCol string, fill func(Row, procfs.Mark), noMarks func(Row, *fanotify.Group) Row) []Row {
	withPath := nq.q.Uses("path")
	var rows []Row
	for _, g := range nq.groups {
		if !nq.wantGroup(g) {
			continue
		}
		for i, h := range g.Holders {
			if !nq.wantPID(h.PID) {
				continue
			}
			base := holderRow(h)
			base[idCol] = g.ID
			base["primary_holder"] = boolInt(i == 0)
			if len(g.Info.Marks) == 0 && noMarks != nil {
				rows = append(rows, noMarks(base, g))
			}
			for _, m := range g.Info.Marks {
				row := maps.Clone(base)
				fill(row, m)
				row["path"] = ""
				if withPath {
					row["path"] = nq.snap.MarkPath(h, m)
				}
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// noMarkRow completes base for a group without marks.
func noMarkRow(base Row, g *fanotify.Group) Row {
	base["mark_type"] = "none"
	if g.ParseErr != nil {
		base["mark_type"] = "unknown"
	}
	return base
}

func fanotifyMarkRow(row Row, m procfs.Mark) {
	for _, col := range []string{"inode", "device", "mount_id", "marked_mnt_ns"} {
		row[col] = ""
	}
	row["mark_type"] = m.Kind.String()
	switch m.Kind {
	case procfs.MarkInode:
		row["inode"] = formatUint(m.Inode)
		row["device"] = m.Dev.String()
	case procfs.MarkFilesystem:
		row["device"] = m.Dev.String()
	case procfs.MarkMount:
		row["mount_id"] = formatUint(m.MountID)
	case procfs.MarkMntNS:
		row["marked_mnt_ns"] = formatUint(m.MntNS)
	}
	row["mask"] = formatUint(uint64(m.Mask))
	row["mask_names"] = fanotify.FanotifyMaskNames(m.Mask)
	row["ignored_mask"] = formatUint(uint64(m.IgnoredMask))
	row["ignored_mask_names"] = fanotify.FanotifyMaskNames(m.IgnoredMask)
	row["mark_flags"] = formatUint(uint64(m.Flags))
	row["mark_flags_names"] = fanotify.MarkFlagNames(m.Flags)
}
