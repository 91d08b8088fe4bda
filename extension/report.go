package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// Exit codes of the report, in the monitoring-plugin convention.
const (
	exitOK       = 0
	exitWarning  = 1
	exitCritical = 2
	exitUnknown  = 3
)

// topHolders is how many processes the report lists per subsystem.
const topHolders = 10

// runReport prints a summary of every limit, the biggest holders, the
// mounts that marking everything would add and one line per risk with its
// fix. The exit code is the worst risk: 2 critical, 1 warning, 3 unknown
// (or an error), 0 ok.
func runReport(args []string) int {
	return report(args, os.Stdout, isTerminal(os.Stdout), os.Stderr)
}

// report runs the report subcommand, writing to out; terminal says whether
// out is a terminal (colour allowed).
func report(args []string, out io.Writer, terminal bool, errOut io.Writer) int {
	flags := flag.NewFlagSet("report", flag.ContinueOnError)
	flags.SetOutput(errOut)
	cfgFlag := newConfigFlag()
	flags.Var(&cfgFlag, "config", "read the configuration from `PATH` (thresholds, scan budget, generate timeout); a PATH given must exist, the default may be missing")
	noColor := flags.Bool("no-color", false, "never colour the output")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUnknown
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(errOut, "fanotify.ext report: unexpected arguments %q\n", flags.Args())
		return exitUnknown
	}
	cfg, err := cfgFlag.load()
	if err != nil {
		fmt.Fprintf(errOut, "fanotify.ext report: %v\n", err)
		return exitUnknown
	}
	// The report only reads: a collector of its own would add marks.
	cfg.Collector.Enabled = false
	log := slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env := tables.NewEnv(cfg, log)
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.GenerateTimeoutS)*time.Second)
	defer cancel()

	rating, err := tables.RateLimits(ctx, env, tables.LimitFilter{})
	if err != nil {
		fmt.Fprintf(errOut, "fanotify.ext report: %v\n", err)
		return exitUnknown
	}
	w := &firstErrorWriter{w: out}
	printer{w: w, color: terminal && !*noColor}.report(rating)
	if w.err != nil {
		fmt.Fprintf(errOut, "fanotify.ext report: %v\n", w.err)
		return exitUnknown
	}
	return exitCode(rating.Assessments)
}

// firstErrorWriter writes to w until a write fails, then keeps that error
// and writes nothing more: the report checks once, at the end, that all of
// it was written.
type firstErrorWriter struct {
	w   io.Writer
	err error
}

func (f *firstErrorWriter) Write(b []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.w.Write(b)
	f.err = err
	return n, err
}

// exitCode is the worst risk: critical, then warning, then unknown. A
// child namespace's own limit, unreadable from outside it, does not make
// the host unknown: it is INT_MAX unless the namespace's root lowered it,
// and its usage is charged, and rated, where its owner is too.
func exitCode(as []fanotify.Assessment) int {
	code := exitOK
	for _, a := range as {
		switch a.Risk {
		case fanotify.RiskCritical:
			return exitCritical
		case fanotify.RiskWarning:
			code = exitWarning
		case fanotify.RiskUnknown:
			if code == exitOK && !hiddenLimit(a) {
				code = exitUnknown
			}
		}
	}
	return code
}

// hiddenLimit reports a child namespace's limit that only its members can
// read.
func hiddenLimit(a fanotify.Assessment) bool { return !a.LimitKnown }

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// printer writes the report, coloured on terminals.
type printer struct {
	w     io.Writer
	color bool
}

var riskColors = map[string]string{
	fanotify.RiskOK:       "\x1b[32m",
	fanotify.RiskWarning:  "\x1b[33m",
	fanotify.RiskCritical: "\x1b[1;31m",
	fanotify.RiskUnknown:  "\x1b[35m",
}

// paint colours text in the colour of risk.
func (p printer) paint(risk, text string) string {
	if !p.color {
		return text
	}
	return riskColors[risk] + text + "\x1b[0m"
}

func (p printer) heading(s string) {
	if p.color {
		s = "\x1b[1m" + s + "\x1b[0m"
	}
	fmt.Fprintf(p.w, "\n%s\n", s)
}

// report prints every part; r rates every limit, so it has a snapshot.
func (p printer) report(r tables.LimitRating) {
	fmt.Fprintf(p.w, "fanotify/inotify limits, kernel %s\n", r.Kernel)
	switch {
	case !r.Visible:
		fmt.Fprintln(p.w, "Other processes are out of sight (another pid namespace, hidepid) or their file descriptors not readable (run as root, in the host's pid namespace): usage is a lower bound.")
	case !r.Snapshot.Complete:
		fmt.Fprintln(p.w, "The scan did not finish (budget, unreadable fdinfo): usage is a lower bound.")
	}
	p.limits(r.Assessments)
	p.holders(r.Snapshot)
	p.mountsReport(r)
	p.risks(r.Assessments)
	p.notRated(r.Assessments, r.Snapshot)
}

func (p printer) limits(as []fanotify.Assessment) {
	p.heading("Limits")
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tSCOPE\tUSER NS\tUID\tUSED / LIMIT\tUSE\tRISK")
	for _, a := range as {
		setting := cmp.Or(a.Sysctl, a.Subsystem+" "+a.Name+" (fixed)")
		if a.GroupID != "" {
			setting += " group " + a.GroupID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", setting, a.Scope, userNS(a.Charge.UserNS), a.Charge.UID, usedOfLimit(a), percent(a), p.paint(a.Risk, a.Risk))
	}
	tw.Flush()
}

func userNS(ns uint64) string {
	if ns == fanotify.InitialUserNS {
		return "initial"
	}
	return strconv.FormatUint(ns, 10)
}

func usedOfLimit(a fanotify.Assessment) string {
	used, limit := "-", "not visible"
	if a.UsedKnown {
		used = strconv.FormatInt(a.Used, 10)
	}
	if a.LimitKnown {
		limit = strconv.FormatInt(a.Value, 10)
	}
	return used + " / " + limit
}

func percent(a fanotify.Assessment) string {
	if !a.UsedKnown || !a.LimitKnown {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", a.Utilization())
}

// holderUsage is what one process holds in one subsystem: the groups it is
// the primary holder of (the first of them names it).
type holderUsage struct {
	first         *fanotify.Group
	groups, marks int64
}

// holders lists, per subsystem, the processes holding the most marks.
// Each group counts once, for its primary holder.
func (p printer) holders(snap *fanotify.Snapshot) {
	for _, sub := range []struct {
		title, groups, marks string
		list                 []*fanotify.Group
	}{
		{"Top fanotify holders", "GROUPS", "MARKS", snap.Fanotify()},
		{"Top inotify holders", "INSTANCES", "WATCHES", snap.Inotify()},
	} {
		p.heading(sub.title)
		top := topByMarks(sub.list)
		if len(top) == 0 {
			fmt.Fprintln(p.w, "none")
			continue
		}
		tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "PROCESS\tPID\tUID\tCGROUP\t%s\t%s\n", sub.groups, sub.marks)
		for _, u := range top {
			h := u.first.Primary()
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\n", h.Comm, h.PID, h.EUID, h.Cgroup, u.groups, u.marks)
		}
		tw.Flush()
	}
}

// topByMarks ranks the primary holders by pid alone: only the identities of
// those listed are read.
func topByMarks(groups []*fanotify.Group) []holderUsage {
	byPID := make(map[int]*holderUsage)
	var all []*holderUsage
	for _, g := range groups {
		pid := g.Holders[0].PID
		u, ok := byPID[pid]
		if !ok {
			u = &holderUsage{first: g}
			byPID[pid] = u
			all = append(all, u)
		}
		u.groups++
		u.marks += int64(g.Info.MarkCount)
	}
	slices.SortStableFunc(all, func(a, b *holderUsage) int {
		return cmp.Or(cmp.Compare(b.marks, a.marks), cmp.Compare(b.groups, a.groups))
	})
	out := make([]holderUsage, 0, min(len(all), topHolders))
	for _, u := range all[:min(len(all), topHolders)] {
		out = append(out, *u)
	}
	return out
}

// mountsReport compares the mounts left to mark (see
// tables.NamespaceMounts) with root's mark headroom in the initial
// namespace.
func (p printer) mountsReport(r tables.LimitRating) {
	p.heading("Mounts per mount namespace")
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MNT NS\tMOUNTS\tTO MARK")
	var unmarked int64
	for _, m := range r.Mounts {
		fmt.Fprintf(tw, "%d\t%d\t%d\n", m.MntNS, m.Mounts, m.Unmarked)
		unmarked += m.Unmarked
	}
	tw.Flush()
	fmt.Fprintln(p.w, "TO MARK: mounts a path reaches (not covered by another mount) that the fanotify group of uid 0 holding the most mount marks has not marked.")
	for _, a := range r.Assessments {
		if a.ProjectedKnown && a.LimitKnown {
			fmt.Fprintf(p.w, "Marking every mount needs %d more marks; uid 0 has %d left of %s=%d: %s.\n",
				unmarked, a.Headroom(), a.Sysctl, a.Value, fitVerdict(a, unmarked, r.Visible))
		}
	}
}

// fitVerdict says whether unmarked more marks fit in a's headroom. A walk
// that could not read every process, or stopped short, saw a lower bound of
// the usage and an upper one of the mounts left to mark (it missed marks):
// neither answer is certain then, whatever the risk.
func fitVerdict(a fanotify.Assessment, unmarked int64, visible bool) string {
	switch {
	case !visible:
		return "cannot tell whether they fit, " + lowerBoundWhy[fanotify.ReasonNoAccess]
	case !a.Complete:
		return "cannot tell whether they fit, " + lowerBoundWhy[fanotify.ReasonIncomplete]
	case unmarked > a.Headroom():
		return "does NOT fit"
	}
	return "fits"
}

// lowerBoundWhy says why usage is a lower bound, by risk reason.
var lowerBoundWhy = map[string]string{
	fanotify.ReasonNoAccess:   "other processes are not visible from here",
	fanotify.ReasonIncomplete: "the scan did not read every process: usage is a lower bound",
}

func (p printer) risks(as []fanotify.Assessment) {
	p.heading("Risks")
	n := 0
	for _, a := range as {
		if hiddenLimit(a) || a.Risk == fanotify.RiskOK {
			continue
		}
		n++
		fmt.Fprintf(p.w, "%s %s uid %d (user ns %s): %s", p.paint(a.Risk, strings.ToUpper(a.Risk)), cmp.Or(a.Sysctl, a.Name), a.Charge.UID, userNS(a.Charge.UserNS), riskWhy(a))
		if a.Remediation != "" {
			fmt.Fprintf(p.w, " -> %s", a.Remediation)
		}
		fmt.Fprintln(p.w)
	}
	if n == 0 {
		fmt.Fprintln(p.w, "none: every limit is below its warning threshold")
	}
}

// notRated lists the limits of child user namespaces that only a process
// inside reads, with the command that reads each namespace's through a
// process living in it.
func (p printer) notRated(as []fanotify.Assessment, snap *fanotify.Snapshot) {
	var namespaces []uint64
	sysctls := make(map[uint64][]string)
	n := 0
	for _, a := range as {
		ns := a.Charge.UserNS
		if !hiddenLimit(a) || slices.Contains(sysctls[ns], a.Sysctl) {
			continue
		}
		if sysctls[ns] == nil {
			namespaces = append(namespaces, ns)
		}
		sysctls[ns] = append(sysctls[ns], a.Sysctl)
		n++
	}
	if n == 0 {
		return
	}
	noun := "limits"
	if n == 1 {
		noun = "limit"
	}
	fmt.Fprintf(p.w, "Not rated: %d %s of child user namespaces (user.max_*, unlimited unless the namespace's root lowered them), which only a process inside reads:\n", n, noun)
	for _, ns := range namespaces {
		names := strings.Join(sysctls[ns], " ")
		if pid, ok := snap.ProcessIn(ns); ok {
			fmt.Fprintf(p.w, "  user ns %d: nsenter -U -t %d sysctl %s\n", ns, pid, names)
		} else {
			fmt.Fprintf(p.w, "  user ns %d: no process lives in it to read %s\n", ns, names)
		}
	}
	fmt.Fprintln(p.w, "What they use is also charged, and rated above, where their owners are.")
}

func riskWhy(a fanotify.Assessment) string {
	why := ""
	switch a.Reason {
	case fanotify.ReasonUsage:
		why = fmt.Sprintf("%s used", percent(a))
	case fanotify.ReasonProjection:
		why = fmt.Sprintf("marking every mount needs %d of %d", a.Projected, a.Value)
	case fanotify.ReasonNoAccess, fanotify.ReasonIncomplete:
		why = lowerBoundWhy[a.Reason]
	}
	if a.LimitKnown && a.UsedKnown && a.Used > a.Value {
		why += " (over the limit: it was lowered after these were created, or some holder is not their creator)"
	}
	if a.Attribution == fanotify.AttributionEstimated {
		why += " (attribution estimated: without kcmp a group held through several fds counts once per fd, or the namespace's uids could not be read)"
	}
	return why
}
