package fanotify

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

func fixtureSysctls(t *testing.T, name string) procfs.Sysctls {
	t.Helper()
	s, err := procfs.NewFS(filepath.Join("procfs", "testdata", "sysctl", name)).ReadSysctls()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	root     = Charge{InitialUserNS, 0}
	user1000 = Charge{InitialUserNS, 1000}
	childNS  = uint64(4026532999)
)

func baseInput(t *testing.T, sysctls string) LimitsInput {
	return LimitsInput{
		Sysctls:        fixtureSysctls(t, sysctls),
		OwnUserNS:      InitialUserNS,
		Direct:         map[Charge]Counts{},
		UnmarkedMounts: 0,
		Visible:        true,
		Complete:       true,
		DedupExact:     true,
		WarningPct:     75,
		CriticalPct:    90,
	}
}

func find(t *testing.T, as []Assessment, l procfs.Limit, ch Charge) Assessment {
	t.Helper()
	for _, a := range as {
		if a.Limit == l && a.Charge == ch {
			return a
		}
	}
	t.Fatalf("no assessment of %s for %+v", l.Sysctl(), ch)
	return Assessment{}
}

func TestRecommendPowerOfTwo(t *testing.T) {
	for _, c := range []struct{ current, need, want int64 }{
		{128, 10, 128},           // already plenty: never lower
		{128, 100, 256},          // 100 fits in half of 256
		{128, 128, 256},          // exactly half is allowed
		{128, 129, 512},          // 258 > 256
		{8192, 7000, 16384},      // 14000 -> 16384
		{205039, 200000, 524288}, // 400000 -> 2^19
		{1 << 20, 0, 1 << 20},
		{16, 1, 16},
	} {
		if got := Recommend(c.current, c.need); got != c.want {
			t.Errorf("Recommend(%d, %d) = %d, want %d", c.current, c.need, got, c.want)
		}
	}
}

func TestThresholds(t *testing.T) {
	in := baseInput(t, "6.18-initial") // max_user_groups 128
	for _, c := range []struct {
		groups     int64
		risk, why  string
		remediated bool
	}{
		{1, RiskOK, "", false},
		{95, RiskOK, "", false},              // 74.2%
		{96, RiskWarning, ReasonUsage, true}, // 75%
		{115, RiskWarning, ReasonUsage, true},
		{116, RiskCritical, ReasonUsage, true}, // 90.6%
		{128, RiskCritical, ReasonUsage, true},
	} {
		in.Direct = map[Charge]Counts{user1000: {Groups: c.groups}}
		a := find(t, AssessLimits(in), procfs.FanotifyGroups, user1000)
		if a.Risk != c.risk || a.Reason != c.why || (a.Remediation != "") != c.remediated {
			t.Errorf("%d/128 groups: risk %q reason %q remediation %q; want %q %q", c.groups, a.Risk, a.Reason, a.Remediation, c.risk, c.why)
		}
	}
	in.Direct = map[Charge]Counts{user1000: {Groups: 128}}
	a := find(t, AssessLimits(in), procfs.FanotifyGroups, user1000)
	if a.Headroom() != 0 || a.Utilization() != 100 || a.Recommended != 256 {
		t.Errorf("at the limit: headroom %d utilization %v recommended %d", a.Headroom(), a.Utilization(), a.Recommended)
	}
	want := "sysctl -w fs.fanotify.max_user_groups=256 && echo 'fs.fanotify.max_user_groups = 256' > /etc/sysctl.d/90-fanotify-max_user_groups.conf"
	if a.Remediation != want {
		t.Errorf("remediation\n got %s\nwant %s", a.Remediation, want)
	}
}

func TestConfiguredThresholds(t *testing.T) {
	in := baseInput(t, "6.18-initial")
	in.WarningPct, in.CriticalPct = 50, 60
	in.Direct = map[Charge]Counts{user1000: {Instances: 70}} // 54.7% of 128
	if a := find(t, AssessLimits(in), procfs.InotifyInstances, user1000); a.Risk != RiskWarning {
		t.Errorf("54.7%% with warning at 50: risk %q", a.Risk)
	}
}

func TestProjectionOfMarkingEveryMount(t *testing.T) {
	in := baseInput(t, "6.18-initial") // max_user_marks 205039
	in.Direct = map[Charge]Counts{root: {Marks: 1000}}
	in.UnmarkedMounts = 40
	a := find(t, AssessLimits(in), procfs.FanotifyMarks, root)
	if !a.ProjectedKnown || a.Projected != 1040 || a.Risk != RiskOK {
		t.Errorf("projected %d (known %v) risk %q, want 1040 ok", a.Projected, a.ProjectedKnown, a.Risk)
	}
	// Only root's mark budget in the initial namespace gets a projection.
	in.Direct[user1000] = Counts{Marks: 5}
	if u := find(t, AssessLimits(in), procfs.FanotifyMarks, user1000); u.ProjectedKnown {
		t.Error("projection on uid 1000")
	}
	// A host with more mounts than marks left: critical by projection
	// while usage itself is low.
	in.UnmarkedMounts = 205000
	a = find(t, AssessLimits(in), procfs.FanotifyMarks, root)
	if a.Risk != RiskCritical || a.Reason != ReasonProjection || a.Recommended != 524288 {
		t.Errorf("projection over the limit: risk %q reason %q recommended %d", a.Risk, a.Reason, a.Recommended)
	}
	in.UnmarkedMounts = -1
	if a = find(t, AssessLimits(in), procfs.FanotifyMarks, root); a.ProjectedKnown {
		t.Error("projection with unknown mounts")
	}
}

// Usage over a limit is what the kernel keeps after the limit was
// lowered: the count stays exact, the headroom none, the risk critical.
func TestOverTheLimitStaysExact(t *testing.T) {
	in := baseInput(t, "6.18-initial") // max_user_groups 128
	in.Direct = map[Charge]Counts{user1000: {Groups: 200, Instances: 3}}
	a := find(t, AssessLimits(in), procfs.FanotifyGroups, user1000)
	if a.Attribution != AttributionExact || a.Headroom() != 0 || a.Risk != RiskCritical {
		t.Errorf("over the limit: attribution %q, headroom %d, risk %q; want exact, 0, critical", a.Attribution, a.Headroom(), a.Risk)
	}
}

// A limit of 0 refuses the next object, used or not: critical, 100%.
func TestZeroLimitIsCritical(t *testing.T) {
	in := baseInput(t, "6.18-initial")
	for i, lv := range in.Sysctls.Initial {
		if lv.Limit == procfs.InotifyInstances {
			in.Sysctls.Initial[i].Value = 0
		}
	}
	in.Direct = map[Charge]Counts{user1000: {Instances: 5}}
	as := AssessLimits(in)
	for ch, used := range map[Charge]int64{root: 0, user1000: 5} {
		a := find(t, as, procfs.InotifyInstances, ch)
		if a.Risk != RiskCritical || a.Utilization() != 100 {
			t.Errorf("limit 0, %d used: risk %q at %.0f%%, want critical at 100%%", used, a.Risk, a.Utilization())
		}
		if want := Recommend(1, max(used, 1)); a.Recommended != want || !strings.Contains(a.Remediation, "="+strconv.FormatInt(want, 10)) {
			t.Errorf("limit 0, %d used: recommended %d, remediation %q; want %d", used, a.Recommended, a.Remediation, want)
		}
	}
}

// A namespace whose uids could not be translated has its usage estimated;
// the others stay exact.
func TestAttributionEstimatedInUntranslatedNamespace(t *testing.T) {
	in := baseInput(t, "6.18-initial")
	inChild := Charge{UserNS: childNS, UID: 54321}
	in.Direct = map[Charge]Counts{inChild: {Groups: 1, Instances: 1}, user1000: {Groups: 1, Instances: 1}}
	in.Untranslated = map[uint64]bool{childNS: true}
	as := AssessLimits(in)
	for ch, want := range map[Charge]string{inChild: AttributionEstimated, user1000: AttributionExact} {
		if a := find(t, as, procfs.FanotifyGroups, ch); a.Attribution != want {
			t.Errorf("%+v: attribution %q, want %q", ch, a.Attribution, want)
		}
	}
}

// Without kcmp a group held through several fds counts once per fd: every
// usage count is an estimate, even far below the limit.
func TestAttributionEstimatedWithoutExactDedup(t *testing.T) {
	in := baseInput(t, "6.18-initial")
	in.Direct = map[Charge]Counts{user1000: {Groups: 2, Marks: 3, Instances: 1, Watches: 4}}
	in.DedupExact = false
	for _, a := range AssessLimits(in) {
		if want := map[bool]string{true: AttributionEstimated, false: AttributionExact}[a.UsedKnown]; a.Attribution != want {
			t.Errorf("%s for %+v (used known %v): attribution %q, want %q", a.Sysctl, a.Charge, a.UsedKnown, a.Attribution, want)
		}
	}
}

func TestChildNamespaceChargedAtEveryLevel(t *testing.T) {
	in := baseInput(t, "6.18-initial")
	grandchild := uint64(4026533111)
	in.Direct = map[Charge]Counts{
		{childNS, 0}:          {Watches: 100},
		{grandchild, 5}:       {Watches: 7},
		{InitialUserNS, 1000}: {Watches: 1},
	}
	in.Ancestors = map[uint64][]Charge{
		childNS:    {user1000},
		grandchild: {{childNS, 0}, user1000},
	}
	as := AssessLimits(in)
	for ch, want := range map[Charge]int64{user1000: 108, {childNS, 0}: 107, {grandchild, 5}: 7} {
		if a := find(t, as, procfs.InotifyWatches, ch); a.Used != want {
			t.Errorf("watches charged to %+v = %d, want %d", ch, a.Used, want)
		}
	}
	// From the initial namespace a child's own limit cannot be read.
	a := find(t, as, procfs.InotifyWatches, Charge{childNS, 0})
	if a.LimitKnown || a.Source != procfs.SourceUserNS || a.Sysctl != "user.max_inotify_watches" || a.Risk != RiskUnknown || a.Reason != ReasonNoAccess || a.RecommendedKnown {
		t.Errorf("child row seen from the host: %+v", a)
	}
	if a := find(t, as, procfs.InotifyWatches, user1000); a.Source != procfs.SourceSysctl || a.Value != 192536 || a.Risk != RiskOK {
		t.Errorf("owner row: %+v", a)
	}
}

func TestInsideChildNamespaceUsesItsOwnLimits(t *testing.T) {
	in := baseInput(t, "6.18-child") // user.max_fanotify_marks 20, groups 5
	in.OwnUserNS = childNS
	in.Direct = map[Charge]Counts{{childNS, 0}: {Marks: 18, Groups: 1}}
	as := AssessLimits(in)
	a := find(t, as, procfs.FanotifyMarks, Charge{childNS, 0})
	if !a.LimitKnown || a.Value != 20 || a.Source != procfs.SourceUserNS || a.Risk != RiskCritical || a.Recommended != 64 {
		t.Errorf("18/20 marks in our namespace: %+v", a)
	}
	if a.Remediation != "inside the user namespace, as its root: sysctl -w user.max_fanotify_marks=64" {
		t.Errorf("remediation %q", a.Remediation)
	}
	if g := find(t, as, procfs.FanotifyGroups, Charge{childNS, 0}); g.Risk != RiskOK || g.Value != 5 {
		t.Errorf("1/5 groups: %+v", g)
	}
}

func TestEveryLimitHasARootRowAndIdleIsOK(t *testing.T) {
	in := baseInput(t, "6.18-initial")
	in.Direct = map[Charge]Counts{root: {Groups: 1, Marks: 3, Instances: 4, Watches: 50}}
	as := AssessLimits(in)
	if len(as) != len(procfs.AllLimits) {
		t.Fatalf("%d assessments, want one per limit", len(as))
	}
	for i, a := range as {
		if a.Charge != root || a.Limit != procfs.AllLimits[i] || a.Risk != RiskOK || a.Remediation != "" {
			t.Errorf("idle host: %+v", a)
		}
		if queue := a.Scope == procfs.ScopeQueue; queue == a.UsedKnown {
			t.Errorf("%s: scope %s but UsedKnown %v", a.Sysctl, a.Scope, a.UsedKnown)
		}
	}
}

// Usage read without seeing every process (no access), or by a walk that
// stopped short (its budget, a misread process), is a lower bound: low
// usage is unknown, high usage alarms.
func TestPartialUsageIsALowerBound(t *testing.T) {
	for _, c := range []struct {
		reason            string
		visible, complete bool
	}{{ReasonNoAccess, false, true}, {ReasonIncomplete, true, false}} {
		in := baseInput(t, "6.18-initial")
		in.Visible, in.Complete = c.visible, c.complete
		in.Direct = map[Charge]Counts{user1000: {Groups: 2, Instances: 120}}
		as := AssessLimits(in)
		if a := find(t, as, procfs.FanotifyGroups, user1000); a.Risk != RiskUnknown || a.Reason != c.reason {
			t.Errorf("low usage, %s: %q %q, want unknown", c.reason, a.Risk, a.Reason)
		}
		if a := find(t, as, procfs.InotifyInstances, user1000); a.Risk != RiskCritical {
			t.Errorf("120/128 even when %s: %q, want critical", c.reason, a.Risk)
		}
	}
}

func TestOldKernelLimits(t *testing.T) {
	in := baseInput(t, "5.10-old")
	in.Direct = map[Charge]Counts{user1000: {Groups: 2, Marks: 9000}, {childNS, 0}: {Groups: 1}}
	in.Ancestors = map[uint64][]Charge{childNS: {user1000}}
	in.Groups = []GroupMarks{
		{ID: "g1", Charge: user1000, Marks: 8000},
		{ID: "g2", Charge: user1000, Marks: 1000},
	}
	as := AssessLimits(in)
	var groupRows []Assessment
	for _, a := range as {
		if a.Limit == procfs.FanotifyMarks {
			groupRows = append(groupRows, a)
		}
	}
	// One row per group plus root's baseline; no per-user mark row.
	if len(groupRows) != 3 {
		t.Fatalf("%d max_user_marks rows, want 3: %+v", len(groupRows), groupRows)
	}
	g1 := groupRows[0]
	if g1.GroupID != "g1" || g1.Scope != procfs.ScopeGroup || g1.Value != 8193 || g1.Source != procfs.SourceKernelDefault || g1.Sysctl != "" || g1.Risk != RiskCritical {
		t.Errorf("8000/8193 marks in one group: %+v", g1)
	}
	if !strings.Contains(g1.Remediation, "FAN_MARK_FILESYSTEM") {
		t.Errorf("old-kernel remediation %q", g1.Remediation)
	}
	if groupRows[2].GroupID != "" || groupRows[2].Charge != root || groupRows[2].Used != 0 {
		t.Errorf("root baseline: %+v", groupRows[2])
	}
	// Groups: 129 per user, the same value in every namespace.
	child := find(t, as, procfs.FanotifyGroups, Charge{childNS, 0})
	if !child.LimitKnown || child.Value != 129 || child.Source != procfs.SourceKernelDefault {
		t.Errorf("child namespace groups on an old kernel: %+v", child)
	}
	if u := find(t, as, procfs.FanotifyGroups, user1000); u.Used != 3 {
		t.Errorf("groups of uid 1000 with its namespace: %d, want 3", u.Used)
	}
	// inotify still has its sysctls.
	if w := find(t, as, procfs.InotifyWatches, root); w.Source != procfs.SourceSysctl || w.Value != 8192 {
		t.Errorf("inotify watches on 5.10: %+v", w)
	}
}

// Before 4.11 inotify limits were per user, not per user namespace: a
// child namespace's usage is rated against the global sysctl.
func TestKernelWithoutPerNamespaceLimits(t *testing.T) {
	in := baseInput(t, "3.10-rhel7")
	in.Direct = map[Charge]Counts{{childNS, 0}: {Instances: 120}}
	a := find(t, AssessLimits(in), procfs.InotifyInstances, Charge{childNS, 0})
	if !a.LimitKnown || a.Source != procfs.SourceSysctl || a.Sysctl != "fs.inotify.max_user_instances" || a.Value != 128 || a.Risk != RiskCritical {
		t.Errorf("child namespace on 3.10: %+v", a)
	}
}
