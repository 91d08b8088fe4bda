package tables

import (
	"context"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// inotifyInstances lists every inotify instance once, however many fds and
// processes hold it, with its watch count.
func inotifyInstances(env *Env) *Table {
	cols := append([]table.ColumnDefinition{
		text("instance_id", "pid:fd of the lowest-pid holder (lowest fd on ties): stable whichever pid a query asks for", index),
		bigint("watches", "Watches of the instance, each charged against max_user_watches"),
	}, identityDefinitions(groupHolderColumns)...)
	return namedRows(&Table{
		Name:        "inotify_instances",
		Description: "inotify instances, one row each however many fds hold them, with their watches and charge.",
		Columns:     cols,
	}, func(ctx context.Context, q QueryContext) ([]Values, error) {
		nq, err := newNotifyQuery(ctx, env, q, procfs.SubsystemInotify, "instance_id", false, true)
		if err != nil {
			return nil, err
		}
		return nq.groupRows(func(g *fanotify.Group, row Values) {
			row["instance_id"] = g.ID
			row["watches"] = markCount(g, g.Info.MarkCount)
		}), nil
	})
}
