package tables

import (
	"context"
	"slices"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// fanotifyGroups lists every fanotify group once, however many fds and
// processes hold it, with the marks it costs.
func fanotifyGroups(env *Env) *Table {
	cols := append([]table.ColumnDefinition{
		text("group_id", "pid:fd of the lowest-pid holder (lowest fd on ties): stable whichever pid a query asks for", index),
	}, identityDefinitions(groupHolderColumns)...)
	cols = append(cols,
		bigint("group_flags", "fanotify_init flags"),
		text("group_flags_names", "fanotify_init flags by name, such as FAN_CLASS_NOTIF|FAN_REPORT_FID"),
		text("class", "notif, content or pre_content"),
		integer("unlimited_marks", "1 for FAN_UNLIMITED_MARKS: its marks are not charged against max_user_marks"),
		integer("unlimited_queue", "1 for FAN_UNLIMITED_QUEUE"),
		bigint("marks", "Marks of the group, of every type"),
		bigint("inode_marks", "Inode marks"),
		bigint("mount_marks", "Mount marks (FAN_MARK_MOUNT)"),
		bigint("fs_marks", "Superblock marks (FAN_MARK_FILESYSTEM)"),
		bigint("mntns_marks", "Mount-namespace marks (FAN_MARK_MNTNS)"),
	)
	return namedRows(&Table{
		Name:        "fanotify_groups",
		Description: "fanotify groups, one row each however many fds hold them, with their flags, marks and charge.",
		Columns:     cols,
	}, func(ctx context.Context, q QueryContext) ([]Values, error) {
		byKind := slices.ContainsFunc(markKindColumns, q.Uses)
		nq, err := newNotifyQuery(ctx, env, q, procfs.SubsystemFanotify, "group_id", byKind, true)
		if err != nil {
			return nil, err
		}
		return nq.groupRows(func(g *fanotify.Group, row Values) { fanotifyGroupRow(ctx, g, row, byKind) }), nil
	})
}

// markKindColumns count the group's marks by kind: the marks are parsed
// only for queries that read one.
var markKindColumns = []string{"inode_marks", "mount_marks", "fs_marks", "mntns_marks"}

// fanotifyGroupRow fills g's own columns; byKind tells that the query
// reads a markKindColumns column, which needs the marks themselves.
func fanotifyGroupRow(ctx context.Context, g *fanotify.Group, row Values, byKind bool) {
	row["group_id"] = g.ID
	flags := g.Info.GroupFlags
	row["group_flags"] = formatUint(uint64(flags))
	row["group_flags_names"] = fanotify.GroupFlagNames(flags)
	row["class"] = fanotify.GroupClass(flags)
	row["unlimited_marks"] = boolInt(g.UnlimitedMarks())
	row["unlimited_queue"] = boolInt(g.UnlimitedQueue())
	row["marks"] = markCount(g, g.Info.MarkCount)
	if byKind {
		kinds := make(map[procfs.MarkKind]int)
		for m := range g.Marks(ctx) {
			kinds[m.Kind]++
		}
		row["inode_marks"] = markCount(g, kinds[procfs.MarkInode])
		row["mount_marks"] = markCount(g, kinds[procfs.MarkMount])
		row["fs_marks"] = markCount(g, kinds[procfs.MarkFilesystem])
		row["mntns_marks"] = markCount(g, kinds[procfs.MarkMntNS])
	}
	if g.ParseErr != nil {
		for _, col := range []string{"group_flags", "group_flags_names", "class", "unlimited_marks", "unlimited_queue"} {
			row[col] = ""
		}
	}
}
