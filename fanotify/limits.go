package fanotify

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// InitialUserNS is the inode of the initial user namespace
// (PROC_USER_INIT_INO): the same on every Linux host.
const InitialUserNS uint64 = 0xEFFFFFFD

// Risk levels of one limit.
const (
	RiskOK       = "ok"
	RiskWarning  = "warning"
	RiskCritical = "critical"
	RiskUnknown  = "unknown"
)

// Why a limit is at risk.
const (
	ReasonUsage      = "usage"      // utilization reached a threshold
	ReasonProjection = "projection" // marking every mount would not fit
	ReasonNoAccess   = "no_access"  // the limit or the usage cannot be seen from here
	ReasonIncomplete = "incomplete" // the walk ran out of its budget or misread a process: usage is a lower bound
)

// How much a usage count can be trusted.
const (
	AttributionExact     = "exact"
	AttributionEstimated = "estimated"
)

// Charge is what the kernel charges inotify and fanotify objects to: an
// effective uid in a user namespace.
type Charge struct {
	UserNS uint64
	UID    uint32
}

// Counts are the objects charged to one Charge.
type Counts struct {
	Groups    int64 // fanotify groups
	Marks     int64 // marks of fanotify groups charged for marks (not FAN_UNLIMITED_MARKS)
	Instances int64 // inotify instances
	Watches   int64 // inotify watches
}

// Add adds o's counts to c.
func (c *Counts) Add(o Counts) {
	c.Groups += o.Groups
	c.Marks += o.Marks
	c.Instances += o.Instances
	c.Watches += o.Watches
}

// of returns the count a per-user limit is checked against.
func (c Counts) of(l procfs.Limit) int64 {
	switch l {
	case procfs.FanotifyGroups:
		return c.Groups
	case procfs.FanotifyMarks:
		return c.Marks
	case procfs.InotifyInstances:
		return c.Instances
	case procfs.InotifyWatches:
		return c.Watches
	}
	return 0
}

// GroupMarks is one fanotify group's mark count: kernels before 5.13 limit
// marks per group.
type GroupMarks struct {
	ID     string
	Charge Charge
	Marks  int64
}

// LimitsInput is everything the limits are computed from.
type LimitsInput struct {
	Sysctls procfs.Sysctls
	// OwnUserNS is the user namespace this process runs in: the only child
	// namespace whose /proc/sys/user limits it can read.
	OwnUserNS uint64
	// Direct holds the counts charged where the objects were created.
	Direct map[Charge]Counts
	// Ancestors maps a child user namespace to the charges made on its
	// behalf above it: the namespace owner's uid in the parent namespace,
	// then the parent's owner in the grandparent, up to the initial one.
	Ancestors map[uint64][]Charge
	// Groups holds every fanotify group (used on kernels before 5.13).
	Groups []GroupMarks
	// UnmarkedMounts counts the mounts of every mount namespace left to
	// mark by a collector marking them all: those a path reaches that its
	// group (root's holding the most mount marks) has not marked yet;
	// negative when unknown.
	UnmarkedMounts int64
	// Visible is false when other processes' file descriptors cannot be
	// seen or read (unprivileged, hidepid, a child pid namespace): usage is
	// then a lower bound.
	Visible bool
	// Complete is false when the scan ran out of its time budget.
	Complete bool
	// DedupExact is false when a group held through several fds may count
	// once per fd (kcmp unavailable): usage is then an estimate.
	DedupExact bool
	// Untranslated holds the user namespaces whose uids are as this process
	// reads them, not as the namespace sees them: their usage is estimated.
	Untranslated map[uint64]bool
	// WarningPct and CriticalPct are the utilization thresholds.
	WarningPct, CriticalPct float64
}

// Assessment is one limit for one charge (or one group): its value, how
// much of it is used, and what to do about it.
type Assessment struct {
	procfs.LimitValue
	// Sysctl is the name of the setting holding Value.
	Sysctl string
	Charge Charge
	// GroupID is set on per-group limits only.
	GroupID string
	// LimitKnown is false for a child namespace's limit read from outside it.
	LimitKnown bool
	// UsedKnown is false for queue limits, which have no usage count.
	Used      int64
	UsedKnown bool
	// Projected is what marking every mount would take (ProjectedKnown on
	// the initial namespace's root mark budget only).
	Projected      int64
	ProjectedKnown bool
	Risk, Reason   string
	// Recommended is the suggested limit (RecommendedKnown when LimitKnown).
	Recommended      int64
	RecommendedKnown bool
	Remediation      string
	Attribution      string
	Complete         bool
}

// Headroom is how many more objects fit before the limit; never negative.
func (a Assessment) Headroom() int64 { return max(0, a.Value-a.Used) }

// Utilization is used as a percentage of the limit. A limit of 0 (or
// less) refuses the next object whatever is used: 100%.
func (a Assessment) Utilization() float64 {
	if a.Value <= 0 {
		return 100
	}
	return float64(a.Used) * 100 / float64(a.Value)
}

// Totals adds every direct charge to its own level and to every ancestor
// level, as the kernel does when it charges an object.
func Totals(direct map[Charge]Counts, ancestors map[uint64][]Charge) map[Charge]Counts {
	totals := make(map[Charge]Counts, len(direct))
	for ch, c := range direct {
		for _, level := range append([]Charge{ch}, ancestors[ch.UserNS]...) {
			t := totals[level]
			t.Add(c)
			totals[level] = t
		}
	}
	return totals
}

// AssessLimits computes one Assessment per (limit, charge with usage), plus
// the initial namespace's uid 0 for every limit, in a stable order.
func AssessLimits(in LimitsInput) []Assessment {
	totals := Totals(in.Direct, in.Ancestors)
	root := Charge{UserNS: InitialUserNS, UID: 0}
	if _, ok := totals[root]; !ok {
		totals[root] = Counts{}
	}
	charges := sortedCharges(totals)

	var out []Assessment
	for _, lv := range in.Sysctls.Initial {
		switch lv.Scope {
		case procfs.ScopeQueue:
			out = append(out, in.assess(lv, root, 0, false))
		case procfs.ScopeGroup:
			out = append(out, in.perGroup(lv, root)...)
		default:
			for _, ch := range charges {
				if used := totals[ch].of(lv.Limit); used > 0 || ch == root {
					out = append(out, in.assess(lv, ch, used, true))
				}
			}
		}
	}
	return out
}

// perGroup assesses a per-group limit for every group, and for root when
// root holds none so that every limit has its baseline row.
func (in LimitsInput) perGroup(lv procfs.LimitValue, root Charge) []Assessment {
	var out []Assessment
	rootSeen := false
	for _, g := range in.Groups {
		a := in.assess(lv, g.Charge, g.Marks, true)
		a.GroupID = g.ID
		out = append(out, a)
		rootSeen = rootSeen || g.Charge == root
	}
	if !rootSeen {
		out = append(out, in.assess(lv, root, 0, true))
	}
	return out
}

func (in LimitsInput) assess(lv procfs.LimitValue, ch Charge, used int64, usedKnown bool) Assessment {
	a := Assessment{
		LimitValue:  lv,
		Sysctl:      lv.Sysctl(),
		Charge:      ch,
		LimitKnown:  true,
		Used:        used,
		UsedKnown:   usedKnown,
		Attribution: AttributionExact,
		Complete:    in.Complete,
	}
	if lv.Source == procfs.SourceKernelDefault {
		a.Sysctl = ""
	}
	// A kernel without the /proc/sys/user file has no per-namespace limit
	// (inotify before 4.11, fanotify before 5.13): the global one applies.
	if _, perNamespace := in.Sysctls.Own[lv.Limit]; perNamespace && ch.UserNS != InitialUserNS {
		a.Sysctl, a.Source, a.Value, a.LimitKnown = lv.UserSysctl(), procfs.SourceUserNS, 0, ch.UserNS == in.OwnUserNS
		if a.LimitKnown {
			a.Value = in.Sysctls.Own[lv.Limit]
		}
	}
	if lv.Limit == procfs.FanotifyMarks && lv.Scope == procfs.ScopeUser && ch == (Charge{InitialUserNS, 0}) && in.UnmarkedMounts >= 0 {
		a.Projected, a.ProjectedKnown = used+in.UnmarkedMounts, true
	}
	// Estimated when shared groups may count once per fd, or when uids
	// are not in their namespace's terms. Usage over the limit is no sign
	// of either: the kernel keeps what was created before a limit was
	// lowered.
	if usedKnown && (!in.DedupExact || in.Untranslated[ch.UserNS]) {
		a.Attribution = AttributionEstimated
	}
	a.Risk, a.Reason = in.risk(a)
	if a.LimitKnown {
		a.Recommended, a.RecommendedKnown = Recommend(a.Value, a.need()), true
	}
	a.Remediation = Remediation(a)
	return a
}

// need is the count a recommended limit must hold.
func (a Assessment) need() int64 {
	if a.ProjectedKnown {
		return a.Projected // includes Used
	}
	return a.Used
}

// risk rates one assessment. Usage read without seeing every process, or
// by a walk that did not finish, is a lower bound: enough to raise an
// alarm, never enough to call it ok.
func (in LimitsInput) risk(a Assessment) (risk, reason string) {
	if !a.LimitKnown {
		return RiskUnknown, ReasonNoAccess
	}
	if !a.UsedKnown {
		return RiskOK, ""
	}
	switch pct := a.Utilization(); {
	case pct >= in.CriticalPct:
		return RiskCritical, ReasonUsage
	case a.ProjectedKnown && a.Projected > a.Value:
		return RiskCritical, ReasonProjection
	case pct >= in.WarningPct:
		return RiskWarning, ReasonUsage
	case !in.Visible:
		return RiskUnknown, ReasonNoAccess
	case !a.Complete:
		return RiskUnknown, ReasonIncomplete
	}
	return RiskOK, ""
}

// Recommend returns the smallest power of two at least twice need (so that
// need stays at or below 50%), and never less than current. A limit of 0
// needs room for one object at least: it refuses the next.
func Recommend(current, need int64) int64 {
	if current <= 0 {
		need = max(need, 1)
	}
	if need <= 0 || need > math.MaxInt64/4 {
		return current
	}
	return max(current, int64(1)<<bits.Len64(uint64(2*need-1)))
}

// Remediation is the command that lifts an at-risk limit, or what to do
// where no setting exists; empty when the limit is ok or unknown.
func Remediation(a Assessment) string {
	if a.Risk != RiskWarning && a.Risk != RiskCritical {
		return ""
	}
	switch a.Source {
	case procfs.SourceKernelDefault:
		if a.Scope == procfs.ScopeGroup {
			return "fixed at 8192 marks per group before Linux 5.13: spread the marks over more groups, mark filesystems (FAN_MARK_FILESYSTEM) instead of directories, or upgrade to 5.13+ for fs.fanotify.max_user_marks"
		}
		return "fixed at 128 groups per user before Linux 5.13: close unused fanotify groups or upgrade to 5.13+ for fs.fanotify.max_user_groups"
	case procfs.SourceUserNS:
		return fmt.Sprintf("inside the user namespace, as its root: sysctl -w %s=%d", a.Sysctl, a.Recommended)
	}
	if a.Recommended <= a.Value {
		// Usage grew past the thresholds of an already large limit: only the
		// holders can fix it.
		return "reduce usage: the limit is already at its recommended value"
	}
	file := fmt.Sprintf("/etc/sysctl.d/90-%s.conf", strings.ReplaceAll(strings.TrimPrefix(a.Sysctl, "fs."), ".", "-"))
	return fmt.Sprintf("sysctl -w %s=%d && echo '%s = %d' > %s", a.Sysctl, a.Recommended, a.Sysctl, a.Recommended, file)
}

func sortedCharges(m map[Charge]Counts) []Charge {
	out := make([]Charge, 0, len(m))
	for ch := range m {
		out = append(out, ch)
	}
	slices.SortFunc(out, func(a, b Charge) int {
		// The initial namespace first, then by namespace and uid.
		if (a.UserNS == InitialUserNS) != (b.UserNS == InitialUserNS) {
			if a.UserNS == InitialUserNS {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.UserNS, b.UserNS), cmp.Compare(a.UID, b.UID))
	})
	return out
}
