package tables

import (
	"context"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery/osquery-go/plugin/table"
)

// fanotifyFeatures lists fanotify capabilities: what the running kernel
// release promises and what probing it found.
func fanotifyFeatures() *Table {
	return namedRows(&Table{
		Name:        "fanotify_features",
		Description: "fanotify capabilities of the running kernel: the mainline release that introduced each, whether this release promises it, and whether probing it (fanotify_init/fanotify_mark, then close) works. Probes create notification-class groups only, as the collector does: a feature only another class may ask for is not probed. Distributions backport: trust supported over expected.",
		Columns: []table.ColumnDefinition{
			text("name", "Feature: a FAN_* init flag, mark flag or event, or a named capability", index),
			text("since_version", "First mainline Linux release with the feature"),
			integer("expected", "1 when the running release (major.minor.patch) is at or after since_version, or is a stable release known to have the feature backported (5.10.220 and later 5.10 for fs.fanotify sysctls and unprivileged fanotify)"),
			integer("supported", "1 when probing shows the feature works, 0 when the kernel rejects it, NULL when the probe could not decide (see probe_detail), in which case the next query probes again"),
			text("probe_detail", "Why supported is 0 or NULL: the errno of the probe, or why the feature is not probed; for a feature inferred from another probe, what it is inferred from"),
		},
	}, func(ctx context.Context, q QueryContext) ([]Values, error) {
		var rows []Values
		for _, f := range fanotify.Features() {
			rows = append(rows, Values{
				"name":          f.Name,
				"since_version": f.Since,
				"expected":      boolInt(f.Expected),
				"supported":     supportText(f.Supported),
				"probe_detail":  f.Detail,
			})
		}
		return rows, nil
	})
}

func supportText(s fanotify.Support) string {
	switch s {
	case fanotify.Supported:
		return "1"
	case fanotify.Unsupported:
		return "0"
	}
	return ""
}
