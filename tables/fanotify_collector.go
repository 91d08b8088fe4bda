package tables

import (
	"context"
	"strconv"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
	"github.com/osquery/osquery-go/plugin/table"
)

// fanotifyCollector shows how each configured path is watched, what it
// loses, and the collector's counters.
func fanotifyCollector(env *Env) *Table {
	return namedRows(&Table{
		Name:        "fanotify_collector",
		Description: "State of the fanotify event collector: one row per collector.paths entry with the mark type in use, its status and what it cannot see, plus the collector's counters. One row with status disabled when the collector is off.",
		Columns: []table.ColumnDefinition{
			text("path", "Configured path", index),
			text("strategy", "Mark type in use: filesystem (one mark per superblock, shared by paths on it), mount or inode; empty when not watched"),
			text("status", "active, degraded (watched with losses, or skipped at a limit such as max_user_marks), failed or disabled"),
			text("error", "Why the path fell back, was skipped or failed, e.g. fanotify_mark: ENOSPC (max_user_marks=8192); on the disabled row, why the configuration file was rejected (the extension then runs on the defaults)"),
			text("lost_events", "What the mark or group in use cannot report: events without FAN_REPORT_FID, directory-entry events on mount marks, subdirectories with inode marks"),
			bigint("marks", "Marks this path added to the group; 0 when it shares the mark of an earlier path"),
			text("group_flags_names", "fanotify_init flags of the collector's group"),
			bigint("events_total", "Events recorded since start, overflow rows included"),
			bigint("overflows", "Kernel queue overflows (events lost in the kernel)"),
			bigint("dropped", "Events dropped from the buffer, oldest first, to stay within buffer_max"),
			bigint("unresolved", "Events dropped because their path could not be read back: a directory deleted before its events were read, or, in a user namespace, one the kernel does not let the collector open by handle"),
			bigint("buffered", "Events in the buffer now"),
			bigint("buffer_max", "collector.buffer_max"),
			bigint("started_time", "When the collector started, unix seconds"),
			text("read_error", "Last error reading the group, empty if none"),
		},
	}, func(ctx context.Context, q QueryContext) ([]Values, error) {
		if env.Collector == nil {
			return []Values{disabledRow(env)}, nil
		}
		return collectorRows(env.Collector.Stats()), nil
	})
}

// disabledRow is the one row of a collector that is off. Where the
// configuration file was rejected, the defaults turned it off, whatever the
// file said: the row says why, where an admin who enabled it looks.
func disabledRow(env *Env) Values {
	row := Values{"status": fanotify.StatusDisabled, "buffer_max": strconv.Itoa(env.Config.Collector.BufferMax)}
	if env.ConfigError != nil {
		row["error"] = "configuration file rejected, running on the defaults: " + env.ConfigError.Error()
	}
	return row
}

func collectorRows(s fanotify.Stats) []Values {
	rows := make([]Values, 0, len(s.Watches))
	for _, w := range s.Watches {
		rows = append(rows, Values{
			"path":              procfs.DisplayPath(w.Path),
			"strategy":          w.Strategy,
			"status":            w.Status,
			"error":             w.Error,
			"lost_events":       w.LostEvents,
			"marks":             strconv.Itoa(w.Marks),
			"group_flags_names": s.GroupFlags,
			"events_total":      strconv.FormatUint(s.EventsTotal, 10),
			"overflows":         strconv.FormatUint(s.Overflows, 10),
			"dropped":           strconv.FormatUint(s.Dropped, 10),
			"unresolved":        strconv.FormatUint(s.Unresolved, 10),
			"buffered":          strconv.Itoa(s.Buffered),
			"buffer_max":        strconv.Itoa(s.BufferMax),
			"started_time":      strconv.FormatInt(s.Started.Unix(), 10),
			"read_error":        s.ReadError,
		})
	}
	return rows
}
