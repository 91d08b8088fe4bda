package tables

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
	"github.com/osquery/osquery-go/plugin/table"
)

// fanotifyLimits rates every inotify and fanotify limit against the usage
// charged to each (user namespace, uid), with the setting that fixes it.
func fanotifyLimits(env *Env) *Table {
	return namedRows(&Table{
		Name:        "fanotify_limits",
		Description: "inotify and fanotify limits with the usage charged to each user namespace and uid (ancestor namespaces included), the risk of ENOSPC/EMFILE and the setting that prevents it.",
		Columns: []table.ColumnDefinition{
			text("subsystem", "fanotify or inotify"),
			text("name", "Limit name: max_user_marks, max_user_groups, max_queued_events, max_user_watches, max_user_instances", index),
			text("sysctl", "Setting holding the value: fs.fanotify.max_user_marks for the initial user namespace, user.max_fanotify_marks for a child one; empty for a limit compiled into the kernel"),
			text("scope", "What the limit counts against: user (each user namespace and uid), group (each fanotify group, kernels before 5.13) or queue (each group's event queue)"),
			bigint("limit_value", "The limit; for group and user limits the count at which the next call fails. NULL for a child user namespace read from outside it"),
			text("source", "sysctl, userns (a child namespace's /proc/sys/user) or kernel_default (no sysctl before Linux 5.13)"),
			bigint("uid", "Effective uid charged, as user_ns sees it: root of a rootless container is 0 in its namespace, and its owner's host uid in the initial one", index),
			bigint("user_ns", "Inode of the user namespace the uid belongs to (4026531837 is the initial one)"),
			text("group_id", "The fanotify group (pid:fd of its first holder) for scope group; empty otherwise"),
			bigint("used", "Groups, marks, instances or watches charged here, including those made in child namespaces owned by this uid; NULL for queue limits"),
			bigint("headroom", "limit_value - used, at least 0"),
			double("utilization", "used as a percentage of limit_value"),
			bigint("projected_need", "For max_user_marks of uid 0 in the initial namespace: used plus the mounts left to mark, what a collector marking every mount of every namespace would take: the reachable mounts (see mount_points) that the group of uid 0 holding the most mount marks has not marked (a mount another group marks still takes one of its marks; a covered mount cannot be marked); NULL elsewhere"),
			text("risk", "ok, warning, critical or unknown (limit or processes not visible from here)"),
			text("risk_reason", "usage, projection, no_access, or incomplete (the scan stopped short: usage is a lower bound); empty when ok"),
			bigint("recommended", "Smallest power of two keeping the need at or below 50%, never below the current value"),
			text("remediation", "Command that raises the limit (and persists it), or what to do where no setting exists; empty when ok"),
			text("attribution", "exact, or estimated when used may be off: kcmp is unavailable (or given pids of another pid namespace) and a group held through several fds counts once per fd, or no process is left in user_ns to read its uid_map and uid is as the host sees it. Either way the charged uid is the holder's euid, which stands in for the creator's"),
			integer("scan_complete", "1 when every process was read within the scan budget; 0 means usage is a lower bound"),
			text("kernel_version", "Running kernel release"),
		},
	}, func(ctx context.Context, q QueryContext) ([]Values, error) {
		rating, err := RateLimits(ctx, env, limitFilter(q))
		if err != nil {
			return nil, err
		}
		rows := make([]Values, 0, len(rating.Assessments))
		for _, a := range rating.Assessments {
			rows = append(rows, limitRow(a, rating.Kernel))
		}
		return rows, nil
	})
}

// LimitFilter narrows RateLimits; a nil field allows everything.
type LimitFilter struct {
	Names []string // limit names (max_user_marks, ...)
	UIDs  []int64  // charged uids
}

// limitFilter pushes the query's name and uid equalities down.
func limitFilter(q QueryContext) LimitFilter {
	var f LimitFilter
	f.Names, _ = q.Equals("name")
	f.UIDs, _ = q.IntEquals("uid")
	return f
}

func (f LimitFilter) allowsName(name string) bool {
	return f.Names == nil || MatchesText(f.Names, name)
}
func (f LimitFilter) allowsUID(uid uint32) bool {
	return f.UIDs == nil || slices.Contains(f.UIDs, int64(uid))
}

// LimitRating is one rating of the limits with what it was computed from.
type LimitRating struct {
	Assessments []fanotify.Assessment
	// Kernel is the running kernel's release.
	Kernel string
	// Snapshot is the usage rated; nil when only queue limits were asked for.
	Snapshot *fanotify.Snapshot
	// Mounts are the mounts of every namespace; nil unless root's
	// max_user_marks was rated (the only limit with a projection).
	Mounts []NamespaceMounts
	// Visible is false when other processes could not be seen (no
	// permission, hidepid, a child pid namespace): usage is then a lower
	// bound.
	Visible bool
}

// RateLimits rates the limits f allows against one snapshot. The report
// subcommand and the table both start here.
func RateLimits(ctx context.Context, env *Env, f LimitFilter) (LimitRating, error) {
	var r LimitRating
	sysctls, err := env.Proc.ReadSysctls()
	if err != nil {
		return r, err
	}
	if r.Kernel, err = env.Proc.KernelRelease(); err != nil {
		return r, err
	}
	sysctls.Initial = slices.DeleteFunc(sysctls.Initial, func(v procfs.LimitValue) bool { return !f.allowsName(v.Name) })
	in := fanotify.LimitsInput{
		Sysctls:        sysctls,
		UnmarkedMounts: -1,
		Visible:        true,
		Complete:       true,
		WarningPct:     env.Config.RiskWarningPct,
		CriticalPct:    env.Config.RiskCriticalPct,
	}
	if in.OwnUserNS, err = env.Proc.OwnNamespaceInode("user"); err != nil {
		return r, err
	}
	if slices.ContainsFunc(sysctls.Initial, func(v procfs.LimitValue) bool { return v.Scope != procfs.ScopeQueue }) {
		// Charges need counts; the mounts left unmarked, fanotify's mount marks.
		if r.Snapshot, err = env.Usage.Snapshot(ctx, procfs.Fanotify|procfs.InotifyCounts); err != nil {
			return r, err
		}
		addUsage(env, r.Snapshot, &in)
		// Only root's mark budget in the initial namespace has a projection.
		if _, ok := sysctls.Lookup(procfs.FanotifyMarks); ok && f.allowsUID(0) {
			if r.Mounts, err = MountsPerNamespace(ctx, env, r.Snapshot); err != nil {
				return r, err
			}
			in.UnmarkedMounts = 0
			for _, ns := range r.Mounts {
				in.UnmarkedMounts += ns.Unmarked
			}
		}
	}
	r.Assessments = slices.DeleteFunc(fanotify.AssessLimits(in), func(a fanotify.Assessment) bool { return !f.allowsUID(a.Charge.UID) })
	r.Visible = in.Visible
	return r, nil
}

// addUsage fills in's usage from snap, whose charges are already in the
// terms of the namespaces charged.
func addUsage(env *Env, snap *fanotify.Snapshot, in *fanotify.LimitsInput) {
	in.Direct = snap.Direct()
	in.Groups = snap.GroupMarks()
	in.Ancestors = snap.Ancestors()
	in.Complete = snap.Complete
	in.DedupExact = snap.DedupExact()
	in.Untranslated = snap.Untranslated()
	in.Visible = snap.Visible && !procHidesOthers(env)
}

// NamespaceMounts counts the mounts of one mount namespace, and those left
// to mark: reachable (procfs.Reachable) and not marked by root's group
// taken for the collector (see collectorMounts).
type NamespaceMounts struct {
	MntNS            uint64
	Mounts, Unmarked int64
}

// MountsPerNamespace reads every mount namespace once (through the same
// views as mount_points) and counts its mounts, and those left to mark.
func MountsPerNamespace(ctx context.Context, env *Env, snap *fanotify.Snapshot) ([]NamespaceMounts, error) {
	marked := collectorMounts(ctx, snap)
	views, err := namespaceViews(ctx, env, NewQueryContext(nil, nil))
	if err != nil {
		return nil, err
	}
	out := make([]NamespaceMounts, 0, len(views))
	for _, v := range views {
		_, mounts := v.read(env)
		ns := NamespaceMounts{MntNS: v.mntNS, Mounts: int64(len(mounts))}
		for i, reached := range procfs.Reachable(mounts) {
			if reached && !marked[uint64(mounts[i].ID)] {
				ns.Unmarked++
			}
		}
		out = append(out, ns)
	}
	return out, nil
}

// collectorMounts are the mounts marked by the group taken for the collector
// whose marking every mount root's budget is projected for: of the groups
// root pays the marks of in the initial user namespace, the one with the
// most mount marks. A mark is one group's: a mount marked by any other
// group (another user's, a FAN_UNLIMITED_MARKS group's, another of root's)
// still takes a mark of the collector's.
func collectorMounts(ctx context.Context, snap *fanotify.Snapshot) map[uint64]bool {
	var most map[uint64]bool
	for _, g := range snap.Fanotify() {
		if g.UnlimitedMarks() || g.Charge() != (fanotify.Charge{UserNS: fanotify.InitialUserNS}) {
			continue
		}
		marked := make(map[uint64]bool)
		for m := range g.Marks(ctx) {
			if m.Kind == procfs.MarkMount {
				marked[m.MountID] = true
			}
		}
		if len(marked) > len(most) {
			most = marked
		}
	}
	return most
}

// procHidesOthers reports whether some processes are invisible to the
// walk, not merely unreadable, so that it cannot notice what it misses: a
// proc of a child pid namespace lists that namespace's processes only
// (while the limits are charged across the host), and one mounted with
// hidepid lists only the processes of a user who is not root.
func procHidesOthers(env *Env) bool {
	if !env.Proc.ListsEveryProcess() {
		return true
	}
	if os.Geteuid() == 0 {
		return false
	}
	self, err := env.Proc.SelfPID()
	if err != nil {
		return true // cannot tell: do not claim a full view
	}
	mounts, err := env.Proc.Mounts(self)
	if err != nil {
		return true
	}
	// The last proc mounted on Root hides the ones below it (a container
	// runtime or unshare --mount-proc stacks a new proc on the host's).
	hides := false
	for _, m := range mounts {
		if m.FSType == "proc" && m.Mountpoint == env.Proc.Root {
			hides = hidesPids(m.VFSOptions)
		}
	}
	return hides
}

// hidesPids reports whether proc's superblock options hide processes
// (hidepid=1/2/noaccess/invisible/ptraceable, not 0/off).
func hidesPids(superOptions string) bool {
	for opt := range strings.SplitSeq(superOptions, ",") {
		if v, ok := strings.CutPrefix(opt, "hidepid="); ok {
			return v != "0" && v != "off"
		}
	}
	return false
}

// limitRow renders one assessment; an empty value is NULL.
func limitRow(a fanotify.Assessment, kernel string) Values {
	row := Values{
		"subsystem":      a.Subsystem,
		"name":           a.Name,
		"sysctl":         a.Sysctl,
		"scope":          a.Scope,
		"limit_value":    "",
		"source":         a.Source,
		"uid":            strconv.FormatUint(uint64(a.Charge.UID), 10),
		"user_ns":        strconv.FormatUint(a.Charge.UserNS, 10),
		"group_id":       a.GroupID,
		"used":           "",
		"headroom":       "",
		"utilization":    "",
		"projected_need": "",
		"risk":           a.Risk,
		"risk_reason":    a.Reason,
		"recommended":    "",
		"remediation":    a.Remediation,
		"attribution":    a.Attribution,
		"scan_complete":  boolInt(a.Complete),
		"kernel_version": kernel,
	}
	if a.LimitKnown {
		row["limit_value"] = strconv.FormatInt(a.Value, 10)
	}
	if a.UsedKnown {
		row["used"] = strconv.FormatInt(a.Used, 10)
		if a.LimitKnown {
			row["headroom"] = strconv.FormatInt(a.Headroom(), 10)
			row["utilization"] = fmt.Sprintf("%.2f", a.Utilization())
		}
	}
	if a.ProjectedKnown {
		row["projected_need"] = strconv.FormatInt(a.Projected, 10)
	}
	if a.RecommendedKnown {
		row["recommended"] = strconv.FormatInt(a.Recommended, 10)
	}
	return row
}

func boolInt(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
