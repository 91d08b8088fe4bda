package tables

import (
	"context"
	"strconv"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// inotifyWatches lists every watch once per fd holding its instance;
// SUM(primary_holder) counts each watch once.
func inotifyWatches(env *Env) *Table {
	cols := append(holderColumns(),
		text("instance_id", "The instance: pid:fd of its lowest-pid holder, as in inotify_instances", index),
		integer("primary_holder", "1 on the rows of the instance's lowest-pid holder (lowest fd on ties): SUM(primary_holder) counts each watch once"),
		bigint("wd", "Watch descriptor"),
		bigint("inode", "Inode number of the watched file"),
		text("device", "major:minor of its filesystem"),
		text("path", "The file the watch's handle resolves to; empty when unknown"),
		bigint("mask", "Events and flags of the watch"),
		text("mask_names", "Events and flags by name"),
		bigint("ignored_mask", "Ignore mask (always 0 for inotify)"),
	)
	return &Table{
		Name:        "inotify_watches",
		Description: "inotify watches, one row per watch per fd holding the instance.",
		Columns:     cols,
		Generate: func(ctx context.Context, q QueryContext) ([]Row, error) {
			nq, err := newNotifyQuery(ctx, env, q, procfs.SubsystemInotify, "instance_id")
			if err != nil {
				return nil, err
			}
			return nq.markRows("instance_id", inotifyWatchRow, nil), nil
		},
	}
}

func inotifyWatchRow(row Row, m procfs.Mark) {
	row["wd"] = strconv.Itoa(int(m.WD))
	row["inode"] = formatUint(m.Inode)
	row["device"] = m.Dev.String()
	row["mask"] = formatUint(uint64(m.Mask))
	row["mask_names"] = fanotify.InotifyMaskNames(m.Mask)
	row["ignored_mask"] = formatUint(uint64(m.IgnoredMask))
}
