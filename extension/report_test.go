package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// alone wraps a child in its own pid namespace and /proc, so that the
// report sees only the test's processes, not whatever else the host runs.
// The host's processes spend the same per-user budgets out of its sight:
// those limits are unknown there (exit 3).
var alone = []string{"unshare", "--pid", "--fork", "--mount", "--mount-proc"}

// aloneAsRoot runs t's child half alone (see alone), as root or not at all,
// and reports whether this process is that child, which goes on with t.
func aloneAsRoot(t *testing.T) bool {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, alone...)
		return false
	}
	return true
}

// runReportFor runs the report into a buffer and checks its exit code.
func runReportFor(t *testing.T, wantCode int, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	code := report(args, &out, false, &errOut)
	if code != wantCode {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, out.String(), errOut.String())
	}
	return out.String() + errOut.String()
}

// In a user namespace with 20 marks allowed: 16 marks warn (exit 1), 18
// are critical (exit 2), each with the command that fixes it.
func TestReportWarningThenCritical(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, "unshare", "-U", "-r")
		return
	}
	ns, err := procfs.NewFS("/proc").NamespaceInode(os.Getpid(), "user")
	if err != nil || ns == fanotify.InitialUserNS {
		t.Fatalf("not in a child user namespace (%d, %v): refusing to lower limits", ns, err)
	}
	if err := os.WriteFile("/proc/sys/user/max_fanotify_marks", []byte("20"), 0); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_REPORT_FID, unix.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	dir := t.TempDir()
	mark := func(n int) {
		for i := range n {
			path := filepath.Join(dir, fmt.Sprintf("f%d", i))
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, path); err != nil {
				t.Fatal(err)
			}
		}
	}
	mark(16)
	out := runReportFor(t, exitWarning, "--no-color", "--config", writeConfig(t, map[string]any{}))
	want := fmt.Sprintf("WARNING user.max_fanotify_marks uid 0 (user ns %d): 80.0%% used -> inside the user namespace, as its root: sysctl -w user.max_fanotify_marks=32", ns)
	if !strings.Contains(out, want) {
		t.Errorf("report at 16/20 lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "16 / 20") {
		t.Errorf("report at 16/20 lacks the usage:\n%s", out)
	}
	mark(18) // re-marking the first 16 costs nothing
	out = runReportFor(t, exitCritical, "--no-color")
	if !strings.Contains(out, fmt.Sprintf("CRITICAL user.max_fanotify_marks uid 0 (user ns %d): 90.0%% used", ns)) {
		t.Errorf("report at 18/20:\n%s", out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("colour with --no-color")
	}
}

// An unprivileged user cannot read other processes: unknown, exit 3.
func TestReportUnprivilegedIsUnknown(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		uid := uint32(54321)
		fanotifytest.RunChild(t, &uid, "env")
		return
	}
	out := runReportFor(t, exitUnknown)
	if !strings.Contains(out, "not readable (run as root") || !strings.Contains(out, "UNKNOWN fs.fanotify.max_user_marks uid 0") {
		t.Errorf("unprivileged report:\n%s", out)
	}
}

// The report shows each part, and says why its per-user limits are unknown
// in a pid namespace of its own.
func TestReportShowsEachPart(t *testing.T) {
	if !aloneAsRoot(t) {
		return
	}
	out := runReportFor(t, exitUnknown, "--no-color")
	for _, part := range []string{"fs.fanotify.max_user_marks", "fs.inotify.max_user_watches", "Top fanotify holders", "Top inotify holders",
		"Mounts per mount namespace", "TO MARK: mounts a path reaches", "Marking every mount needs", ": cannot tell whether they fit", "another pid namespace", "UNKNOWN fs.fanotify.max_user_marks uid 0"} {
		if !strings.Contains(out, part) {
			t.Errorf("report lacks %q:\n%s", part, out)
		}
	}
}

// A holder of this test's making is listed with its pid and counts.
func TestReportListsTopHolders(t *testing.T) {
	if !aloneAsRoot(t) {
		return
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// More watches than daemons hold: this process is among the top ones.
	dir := t.TempDir()
	for i := range 3000 {
		path := filepath.Join(dir, strconv.Itoa(i))
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.InotifyAddWatch(fd, path, unix.IN_CREATE); err != nil {
			t.Fatal(err)
		}
	}
	out := runReportFor(t, exitUnknown, "--no-color")
	_, holders, _ := strings.Cut(out, "Top inotify holders")
	holders, _, _ = strings.Cut(holders, "Mounts per mount namespace")
	for _, line := range strings.Split(holders, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == strconv.Itoa(os.Getpid()) {
			if f[2] != "0" || f[len(f)-2] != "1" || f[len(f)-1] != "3000" {
				t.Errorf("this process's line %q, want uid 0, 1 instance, 3000 watches", line)
			}
			return
		}
	}
	t.Errorf("pid %d is not among the inotify holders:\n%s", os.Getpid(), holders)
}

// The report reads the command name and cgroup of the holders it lists, not
// of every holder: 12 processes hold an instance each, 10 are listed.
func TestReportReadsListedHoldersOnly(t *testing.T) {
	if !aloneAsRoot(t) {
		return
	}
	for range topHolders + 2 {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.InotifyAddWatch(fd, t.TempDir(), unix.IN_CREATE); err != nil {
			t.Fatal(err)
		}
		fanotifytest.Hold(t, nil, fd)
		unix.Close(fd)
	}
	scanner := fanotify.NewScanner(procfs.NewFS(procfs.DefaultRoot), time.Minute, fanotify.KeptMarks, slog.New(slog.DiscardHandler))
	snap, err := scanner.Snapshot(context.Background(), procfs.InotifyCounts)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printer{w: &out}.holders(snap)
	listed := map[string]bool{}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "sleep" {
			listed[f[1]] = true
		}
	}
	read := 0
	for _, g := range snap.Inotify() {
		if h := g.Holders[0]; h.Comm != "" {
			read++
			if !listed[strconv.Itoa(h.PID)] {
				t.Errorf("pid %d is not listed, but its command name was read", h.PID)
			}
		}
	}
	if len(snap.Inotify()) != topHolders+2 || len(listed) != topHolders || read != topHolders {
		t.Errorf("%d instances, %d listed, %d holders read; want %d, %d, %d:\n%s",
			len(snap.Inotify()), len(listed), read, topHolders+2, topHolders, topHolders, out.String())
	}
}

func TestReportBadArguments(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"risk_warning_pct": 95, "risk_critical_pct": 90}`), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "fanotify.jsn")
	for _, args := range [][]string{{"--config", bad}, {"--config", missing}, {"--bogus"}, {"extra"}} {
		var out, errOut bytes.Buffer
		if code := report(args, &out, false, &errOut); code != exitUnknown || errOut.Len() == 0 {
			t.Errorf("report %q: exit %d, stderr %q; want 3 and a message", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := report([]string{"-h"}, &out, false, &errOut); code != exitOK || !strings.Contains(errOut.String(), "-no-color") {
		t.Errorf("report -h: exit %d, usage %q", code, errOut.String())
	}
}

// The limits of child user namespaces are read through a process living in
// each: here the holder in the inner of two nested namespaces. No process
// lives in the outer one, which the inner one's unshare left.
func TestReportNamesAProcessInsideEachChildNamespace(t *testing.T) {
	if !aloneAsRoot(t) {
		return
	}
	pid := fanotifytest.HoldInNestedUserNS(t)
	inner, err := procfs.NewFS(procfs.DefaultRoot).NamespaceInode(pid, "user")
	if err != nil {
		t.Fatal(err)
	}
	outer := fanotifytest.ParentUserNS(t, pid)

	out := runReportFor(t, exitUnknown, "--no-color")
	for _, want := range []string{
		fmt.Sprintf("\n  user ns %d: nsenter -U -t %d sysctl user.max_inotify_instances user.max_inotify_watches\n", inner, pid),
		fmt.Sprintf("\n  user ns %d: no process lives in it to read user.max_inotify_instances user.max_inotify_watches\n", outer),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// Where usage is a lower bound, so is the headroom, and the mounts left to
// mark are an upper bound: the report cannot tell whether marking every
// mount fits, whatever the risk the usage seen makes.
func TestReportMountsFitUnknownWithoutEveryProcess(t *testing.T) {
	for _, c := range []struct {
		used              int64
		visible, complete bool
		want              string
	}{
		{10, true, true, "uid 0 has 90 left of fs.fanotify.max_user_marks=100: fits."},
		{95, true, true, "uid 0 has 5 left of fs.fanotify.max_user_marks=100: does NOT fit."},
		{80, false, true, "uid 0 has 20 left of fs.fanotify.max_user_marks=100: cannot tell whether they fit, other processes are not visible from here."},
		{95, true, false, ": cannot tell whether they fit, the scan did not read every process"},
	} {
		marks := fanotify.Assessment{LimitValue: procfs.LimitValue{Value: 100}, Sysctl: "fs.fanotify.max_user_marks",
			LimitKnown: true, UsedKnown: true, Used: c.used, ProjectedKnown: true, Projected: c.used + 20, Complete: c.complete}
		var out bytes.Buffer
		printer{w: &out}.mountsReport(tables.LimitRating{Assessments: []fanotify.Assessment{marks}, Visible: c.visible,
			Mounts: []tables.NamespaceMounts{{MntNS: 1, Mounts: 25, Unmarked: 20}}})
		if !strings.Contains(out.String(), "Marking every mount needs 20 more marks; ") || !strings.Contains(out.String(), c.want) {
			t.Errorf("used %d, visible %v, complete %v: lacks %q:\n%s", c.used, c.visible, c.complete, c.want, out.String())
		}
	}
}

// A report that could not be written is an error, not the exit code of
// what it would have said.
func TestReportWriteErrorIsUnknown(t *testing.T) {
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer full.Close()
	var errOut bytes.Buffer
	if code := report([]string{"--config", writeConfig(t, map[string]any{})}, full, false, &errOut); code != exitUnknown ||
		!strings.Contains(errOut.String(), "write /dev/full: no space left on device") {
		t.Errorf("exit %d, stderr %q; want 3 and the write error", code, errOut.String())
	}
}

// Colour only on a terminal.
func TestReportColourOnTerminalOnly(t *testing.T) {
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skip(err)
	}
	defer ptmx.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if !isTerminal(ptmx) || isTerminal(w) {
		t.Errorf("isTerminal: pty %v, pipe %v", isTerminal(ptmx), isTerminal(w))
	}
	var out bytes.Buffer
	p := printer{w: &out, color: true}
	p.risks([]fanotify.Assessment{{Risk: fanotify.RiskCritical, Reason: fanotify.ReasonUsage, LimitKnown: true}})
	if !strings.Contains(out.String(), "\x1b[1;31mCRITICAL\x1b[0m") {
		t.Errorf("coloured critical: %q", out.String())
	}
}

// The worst risk decides, whatever the order: critical, warning, unknown.
func TestReportExitCodePrecedence(t *testing.T) {
	rated := func(risks ...string) []fanotify.Assessment {
		as := make([]fanotify.Assessment, len(risks))
		for i, r := range risks {
			as[i].Risk, as[i].LimitKnown = r, true
		}
		return as
	}
	// A rootless container's own limit, unreadable from the host.
	hiddenChildLimit := fanotify.Assessment{Risk: fanotify.RiskUnknown, Reason: fanotify.ReasonNoAccess}
	ok, warn, crit, unknown := fanotify.RiskOK, fanotify.RiskWarning, fanotify.RiskCritical, fanotify.RiskUnknown
	for _, c := range []struct {
		as   []fanotify.Assessment
		want int
	}{
		{rated(ok, ok), exitOK},
		{rated(ok, unknown, ok), exitUnknown},
		{rated(unknown, warn, ok), exitWarning},
		{rated(crit, warn, unknown), exitCritical},
		{rated(unknown, warn, crit, ok), exitCritical},
		{append(rated(ok), hiddenChildLimit), exitOK},
		{append(rated(warn), hiddenChildLimit), exitWarning},
	} {
		if got := exitCode(c.as); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.as, got, c.want)
		}
	}
}
