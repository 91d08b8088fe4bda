package tables

import (
	"strconv"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// inotifyWatches lists every watch once per fd holding its instance;
// SUM(primary_holder) counts each watch once.
func inotifyWatches(env *Env) *Table {
	mt := markTable{
		name: "inotify_watches", subsystem: procfs.SubsystemInotify, idCol: "instance_id", cols: inotifyWatchColumns,
		summary: "inotify_instances, whose watches column counts them",
	}
	return &Table{
		Name:        "inotify_watches",
		Description: "inotify watches, one row per watch per fd holding the instance.",
		Columns: markTableColumns(
			text("instance_id", "The instance: pid:fd of its lowest-pid holder, as in inotify_instances", index),
			"SUM(primary_holder) counts each watch once",
			"The file the watch's handle resolves to; empty when unknown",
			inotifyWatchColumns),
		Generate: mt.generate(env),
		Stream:   mt.stream(env),
	}
}

var inotifyWatchColumns = []markColumn{
	{bigint("wd", "Watch descriptor"), func(m *procfs.Mark) string { return strconv.Itoa(int(m.WD)) }, nil},
	{bigint("inode", "Inode number of the watched file"), func(m *procfs.Mark) string { return formatUint(m.Inode) }, nil},
	{text("device", "major:minor of its filesystem"), func(m *procfs.Mark) string { return m.Dev.String() }, devKey},
	{bigint("mask", "Events and flags of the watch"), func(m *procfs.Mark) string { return formatUint(uint64(m.Mask)) }, maskKey},
	{text("mask_names", "Events and flags by name"), func(m *procfs.Mark) string { return fanotify.InotifyMaskNames(m.Mask) }, maskKey},
	{bigint("ignored_mask", "Ignore mask (always 0 for inotify)"), func(m *procfs.Mark) string { return formatUint(uint64(m.IgnoredMask)) }, ignoredKey},
}
