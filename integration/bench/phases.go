package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// sizes are the sizes a scale series measures, the full one last.
func (b *bench) sizes(full int, fractions ...int) []int {
	if !b.o.scale {
		return []int{full}
	}
	var out []int
	for _, f := range fractions {
		out = append(out, full/f)
	}
	return append(out, full)
}

// repsFor measures the full size reps times, smaller ones three times.
func (b *bench) repsFor(size, full int) int {
	if size == full {
		return b.o.reps
	}
	return min(3, b.o.reps)
}

// snapshotAge is how long the extension reuses a walk; calls through the
// protocol wait longer so that each pays for its own walk.
const snapshotAge = 1100 * time.Millisecond

func (b *bench) mountPhase() error {
	// SELECT * walks every process's fds and reads the fdinfo of the
	// notify ones, of which a fresh machine may have none: this process
	// holds one, as any real host has some.
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(in)
	if _, err := unix.InotifyAddWatch(in, "/", unix.IN_CREATE); err != nil {
		return err
	}
	ns, err := newMountNamespace()
	if err != nil {
		return err
	}
	defer b.cleanupOnce(ns.stop)()
	for _, n := range b.sizes(b.o.mounts, 10, 2) {
		b.progress("mounts: %d bind mounts", n)
		if err := ns.grow(b.ctx, n); err != nil {
			return err
		}
		reps := b.repsFor(n, b.o.mounts)
		items := []item{
			{name: "raw_mountinfo", run: rawRun(rawMountinfo)},
			{name: "raw_mountinfo_walk", run: rawRun(rawMountinfoAndWalk)},
			{name: "mount_points", run: generate(mountPointsStar, n, "mount_points")},
			{name: "mount_points_mounts_only", run: generate(mountColumnsOnly, n, "mount_points")},
		}
		cMountinfoOf, cWalkOf := noCost, noCost
		if n == b.o.mounts {
			cMountinfo, ok := b.cbin.cMountinfo()
			items, cMountinfoOf = withItem(items, cMountinfo, ok)
			items, cWalkOf = b.cbin.withC(items)
		}
		c, err := b.measure(reps, items...)
		if err != nil {
			return err
		}
		raw, rawWithWalk, all, mountsOnly := c[0], c[1], c[2], c[3]
		b.scales = append(b.scales, scaleRow{Series: "mounts", Size: plural(n, "bind mount"), Units: n, Items: []namedCost{
			{"raw mountinfo read (Go)", raw},
			{"mount_points, mount columns only", mountsOnly},
			{"raw mountinfo read and walk (Go)", rawWithWalk},
			{"mount_points SELECT *", all},
		}})
		if n != b.o.mounts {
			continue
		}
		read, err := mountinfoTotals()
		if err != nil {
			return err
		}
		cMountinfo := cMountinfoOf(c)
		b.addGoal(ratioGoal(fmt.Sprintf("mount_points at %d mounts, mount columns", n), mountsOnly, raw, cMountinfo, 3,
			fmt.Sprintf("the raw read of the same mountinfo files (one per mount namespace) against the columns read from them; %s", read)))
		b.addGoal(ratioGoal(fmt.Sprintf("mount_points SELECT * at %d mounts", n), all, rawWithWalk, sumCosts(cMountinfo, cWalkOf(c)), 3,
			fmt.Sprintf("the mark-count columns add a walk of every process's fds, so the baselines are the raw mountinfo read plus the raw walk (in C, the two programs' costs added); its cost depends on the watches and marks the rest of the host holds (%.2f× the Go mountinfo read alone)", ratio(all, raw))))
	}
	return nil
}

func (b *bench) hostPhase() error {
	h, err := newBusyHost()
	if err != nil {
		return err
	}
	defer b.cleanupOnce(h.stop)()
	for _, n := range b.sizes(b.o.procs, 4, 2) {
		b.progress("host: %d holders with %d watches and %d marks each", n, b.o.watches, b.o.marks)
		if err := h.add(b.ctx, n-len(h.holders), b.o.watches, b.o.marks); err != nil {
			return err
		}
		reps := b.repsFor(n, b.o.procs)
		minRows := n * min(b.o.watches, b.o.marks)
		items := []item{
			{name: "raw_walk", run: rawRun(rawWalk)},
			{name: "select_all", run: generate(notifyStar, minRows, "fanotify_marks", "inotify_watches")},
			{name: "with_path", run: generate(everyColumn, minRows, "fanotify_marks", "inotify_watches")},
			{name: "count", run: generate(selectCount, minRows, "fanotify_marks", "inotify_watches")},
			{name: "limits", run: generate(limitsStar, 1, "fanotify_limits")},
			{name: "raw_walk_identities", run: rawRun(rawWalkWithIdentities)},
			{name: "raw_walk_two_passes", run: rawRun(rawWalkInTwoPasses)},
		}
		cOf, cIdentitiesOf, cGroupsOf := noCost, noCost, noCost
		allLong, limitsLong := noCost, noCost
		if n == b.o.procs {
			items, cOf = b.cbin.withC(items)
			items, cIdentitiesOf = b.cbin.withC(items, "--identities")
			items, cGroupsOf = b.cbin.withC(items, "--identities", "--groups")
			var stop func()
			items, allLong, stop, err = b.withLongLived(items, "select_all_long_lived", notifyStar, minRows, "fanotify_marks", "inotify_watches")
			if err != nil {
				return err
			}
			defer stop()
			items, limitsLong, stop, err = b.withLongLived(items, "limits_long_lived", limitsStar, 1, "fanotify_limits")
			if err != nil {
				return err
			}
			defer stop()
		}
		m, err := b.measure(reps, items...)
		if err != nil {
			return err
		}
		raw, all, withPath, count, limits, rawIdentities, rawTwoPasses := m[0], m[1], m[2], m[3], m[4], m[5], m[6]
		b.scales = append(b.scales, scaleRow{Series: "processes", Size: plural(n, "process"), Units: n, Items: []namedCost{
			{"raw walk (Go)", raw},
			{"fanotify_marks + inotify_watches SELECT *", all},
			{"SELECT *, path", withPath},
			{"the same, COUNT(*)", count},
			{"fanotify_limits", limits},
		}})
		if n != b.o.procs {
			continue
		}
		c := cOf(m)
		what := fmt.Sprintf("%d processes × (%d inotify watches + %d fanotify marks)", n, b.o.watches, b.o.marks)
		b.addGoal(ratioGoal("fanotify_marks + inotify_watches SELECT *", all, raw, c, 1.3,
			fmt.Sprintf("%s; SELECT *, path (the hidden column, a file handle decoded per mark): %s, %.2f× the Go walk; %s; %s",
				what, costCell(withPath), ratio(withPath, raw), identitiesNote(all, rawIdentities, cIdentitiesOf(m), cGroupsOf(m), c),
				longLivedNote(*allLong(m), raw, c))))
		b.addGoal(ratioGoal("fanotify_marks + inotify_watches COUNT(*)", count, raw, c, 1.1,
			fmt.Sprintf("%s; the raw Go walk in two passes, as two queries, one per table, read (the fdinfo of fanotify fds, then that of the inotify fds found): %s, %.2f× the one-pass Go walk, COUNT(*) %.2f× that",
				what, costCell(rawTwoPasses), ratio(rawTwoPasses, raw), ratio(count, rawTwoPasses))))
		b.addGoal(ratioGoal("fanotify_limits", limits, raw, c, 1.5, what+"; "+longLivedNote(*limitsLong(m), raw, c)))
		if err := b.oneSubsystem(reps, what, minRows); err != nil {
			return err
		}
		if err := b.commandLine(reps, h.holders[0].Process.Pid); err != nil {
			return err
		}
		if err := b.protocol(minRows); err != nil {
			return err
		}
	}
	return nil
}

// withLongLived adds to items the tables measured as a long-lived
// extension answers them (longLived), and returns how to find its cost in
// the measurements, and what ends its runner (at the latest, the cleanup).
func (b *bench) withLongLived(items []item, name string, q tables.QueryContext, minRows int, names ...string) ([]item, func([]cost) *cost, func(), error) {
	it, close, err := longLived(name, q, minRows, names...)
	if err != nil {
		return nil, nil, nil, err
	}
	items, costOf := withItem(items, it, true)
	return items, costOf, b.cleanupOnce(close), nil
}

// longLivedNote gives the cost of a measure in a long-lived extension
// against the raw walks: the goal's own measure takes a fresh extension.
func longLivedNote(long, goWalk cost, cWalk *cost) string {
	note := fmt.Sprintf("in a long-lived extension, its walk before past the %s a snapshot serves (osqueryd's schedule): %s, %.2f× the Go walk",
		fanotify.SnapshotMaxAge, costCell(long), ratio(long, goWalk))
	if cWalk != nil {
		note += fmt.Sprintf(", %.2f× the C walk", ratio(long, *cWalk))
	}
	return note
}

// identitiesNote compares SELECT * with the raw walks that also make the
// reads of each holder's identity, which its holder columns show and the
// goal's baseline does not make.
func identitiesNote(all, goWalk cost, cWalk, cGroups, cPlain *cost) string {
	note := fmt.Sprintf("the raw walk also reading each holder's identity (stat, ns/user, ns/mnt, comm, cgroup): Go %s, SELECT * %.2f× that",
		costCell(goWalk), ratio(all, goWalk))
	if cWalk != nil {
		note += fmt.Sprintf("; C %s, %.2f×", costCell(*cWalk), ratio(all, *cWalk))
	}
	if cGroups != nil && cPlain != nil {
		note += fmt.Sprintf("; the C walk reading identities and also telling which fds share a file, by kcmp in about the fewest "+
			"comparisons that can (the group columns), every kernel read SELECT * makes in one pass: %s, %.2f× the C walk, SELECT * %.2f× that",
			costCell(*cGroups), ratio(*cGroups, *cPlain), ratio(all, *cGroups))
	}
	return note
}

// oneSubsystem measures COUNT(*) on one per-mark table alone, which reads
// the fdinfo of its own subsystem only, against raw walks that read the
// same (and, in the note, against the walk reading both).
func (b *bench) oneSubsystem(reps int, what string, minRows int) error {
	for _, s := range []struct{ table, link string }{{"fanotify_marks", fanotifyLink}, {"inotify_watches", inotifyLink}} {
		items, cOf := b.cbin.withC([]item{
			{name: "raw_walk_" + s.table, run: rawRun(func(r *rawReader) (int, error) { return rawWalkOf(r, s.link) })},
			{name: "count_" + s.table, run: generate(selectCount, minRows, s.table)},
			{name: "raw_walk", run: rawRun(rawWalk)},
		}, s.link)
		m, err := b.measure(reps, items...)
		if err != nil {
			return err
		}
		raw, count, both, c := m[0], m[1], m[2], cOf(m)
		b.addGoal(ratioGoal(s.table+" alone, COUNT(*)", count, raw, c, 1.1,
			fmt.Sprintf("%s; the baselines read the fdinfo of %s fds only; %.2f× the raw Go walk reading both subsystems (%s)",
				what, s.link, ratio(count, both), costCell(both))))
	}
	return nil
}

// protocol compares generates through the osquery protocol (a stand-in
// osqueryd calling the real fanotify.ext over Thrift) with the same
// generates in process.
func (b *bench) protocol(minRows int) error {
	e, stop, err := b.startExtension(config.Default())
	if err != nil {
		return err
	}
	defer stop()
	time.Sleep(2 * time.Second)
	if rss, err := vmRSS(e.Pid); err == nil {
		b.rss = append(b.rss, rssFigure{"idle, collector disabled", rss, 0, true})
	}
	for _, t := range []struct {
		table   string
		minRows int
	}{{"fanotify_limits", 1}, {"inotify_watches", minRows}} {
		b.progress("protocol: %s", t.table)
		q, ctxJSON := selectStar(t.table)
		inProcess := stream(q, t.minRows, t.table)
		var runs, ins []cost
		var decoding []time.Duration
		for range b.o.protoReps {
			if err := b.ctx.Err(); err != nil {
				return err
			}
			time.Sleep(snapshotAge)
			run, decode, err := b.protocolCall(e, t.table, ctxJSON, t.minRows)
			if err != nil {
				return err
			}
			runs, decoding = append(runs, run), append(decoding, decode)
			in, err := b.measure(1, item{name: "inprocess_" + t.table, run: inProcess})
			if err != nil {
				return err
			}
			ins = append(ins, in[0])
		}
		in := median(ins)
		proto := median(runs)
		// The goal is judged on what the extension spends (its CPU, as the
		// other goals) and on when its answer has arrived.
		note := fmt.Sprintf("median of %d calls each, alternating; the fanotify.ext column is the extension process's CPU from before the call to after the answer was read, idle after its last byte (schedstat: reading the request, the stream's walk and rows, encoding and writing them) and the time from the call to that arrival, the stand-in's decoding excluded; the Go baseline column is Runner.Stream and a loop over its rows in process (the walk and every row built, nothing encoded)",
			b.o.protoReps)
		cpuLimit := time.Duration(1.2*float64(in.CPU)) + 2*time.Millisecond
		b.addGoal(goal{Name: "generate " + t.table + " through the protocol: the extension's CPU", Project: proto, Baseline: in,
			Target: "≤ 1.2× in-process + 2 ms", Ratio: ratio(proto, in), Met: proto.CPU <= cpuLimit, JudgedBy: "in-process stream",
			Note: fmt.Sprintf("CPU limit %s; %s", ms(cpuLimit), note)})
		wallLimit := time.Duration(1.2*float64(in.Wall)) + 2*time.Millisecond
		b.addGoal(goal{Name: "generate " + t.table + " through the protocol: the response's last byte arrived", Project: proto, Baseline: in,
			Target: "wall ≤ 1.2× in-process + 2 ms", Ratio: float64(proto.Wall) / float64(in.Wall), Met: proto.Wall <= wallLimit,
			JudgedBy: "in-process stream",
			Note:     fmt.Sprintf("wall limit %s; the stand-in's Go client then spent %s of CPU decoding the response, not counted", ms(wallLimit), ms(medianOf(decoding)))})
	}
	if rss, err := vmRSS(e.Pid); err == nil {
		b.rss = append(b.rss, rssFigure{"after the protocol queries (a SELECT * of inotify_watches among them), collector disabled", rss, 0, false})
	}
	return nil
}

// protocolCall is one generate through the protocol: the extension
// process's CPU time, the time from the call to the arrival of the
// response's last byte, and the CPU time of this process, the client, which
// decodes the response.
func (b *bench) protocolCall(e *extension, table, ctxJSON string, minRows int) (c cost, decode time.Duration, err error) {
	cpu0, err := processCPU(e.Pid)
	if err != nil {
		return cost{}, 0, err
	}
	runtime.GC()
	self0 := selfCPU()
	rows, delivered, err := e.generateDelivered(table, ctxJSON)
	decode = selfCPU() - self0
	if err != nil {
		return cost{}, 0, err
	}
	if len(rows) < minRows {
		return cost{}, 0, fmt.Errorf("%s through the protocol: %d rows", table, len(rows))
	}
	cpu1, err := processCPU(e.Pid)
	if err != nil {
		return cost{}, 0, err
	}
	return cost{CPU: cpu1 - cpu0, Wall: delivered}, decode, nil
}

// watchPhase grows the watches held on the host with few processes, each
// holding one inotify instance of 1000 watches.
func (b *bench) watchPhase() error {
	h, err := newBusyHost()
	if err != nil {
		return err
	}
	defer b.cleanupOnce(h.stop)()
	// Two extensions, so that neither's heap holds what the other query
	// left.
	counting, stopCounting, err := b.startExtension(config.Default())
	if err != nil {
		return err
	}
	defer stopCounting()
	parsing, stopParsing, err := b.startExtension(config.Default())
	if err != nil {
		return err
	}
	defer stopParsing()
	const perHolder = 1000
	for _, w := range []int{10000, 50000, 100000} {
		n := w / perHolder
		b.progress("watches: %d processes × %d watches", n, perHolder)
		if err := h.add(b.ctx, n-len(h.holders), perHolder, 0); err != nil {
			return err
		}
		reps := min(3, b.o.reps)
		c, err := b.measure(reps,
			item{name: "raw_walk", run: rawRun(rawWalk)},
			item{name: "watches_select_all", run: generate(watchesStar, w, "inotify_watches")},
			item{name: "watches_count", run: generate(selectCount, w, "inotify_watches")})
		if err != nil {
			return err
		}
		raw, all, count := c[0], c[1], c[2]
		time.Sleep(snapshotAge)
		counted, err := rssAfter(counting, "fanotify_limits", "")
		if err != nil {
			return err
		}
		parsed, err := rssAfter(parsing, "mount_points", `{"colsUsed":["inotify_watches"]}`)
		if err != nil {
			return err
		}
		b.watchRSS = append(b.watchRSS, watchRSS{Watches: w, Counted: counted, Parsed: parsed})
		b.scales = append(b.scales, scaleRow{Series: "watches", Size: fmt.Sprintf("%d watches (%d processes)", w, n), Units: w, Items: []namedCost{
			{"raw walk (Go)", raw},
			{"inotify_watches SELECT *", all},
			{"inotify_watches COUNT(*)", count},
		}})
	}
	return nil
}

// startExtension starts a fanotify.ext with cfg, stopped at the cleanup if
// not before by the function returned.
func (b *bench) startExtension(cfg config.Config) (*extension, func(), error) {
	e, err := startExtension(b.o.ext, cfg)
	if err != nil {
		return nil, nil, err
	}
	return e, b.cleanupOnce(e.stop), nil
}

// rssAfter is e's VmRSS after it generated table.
func rssAfter(e *extension, table, ctxJSON string) (int64, error) {
	if _, err := e.generate(table, ctxJSON); err != nil {
		return 0, err
	}
	return vmRSS(e.Pid)
}

// sentinel is the last file of a burst: seeing it means the burst was read.
const sentinel = "zz-sentinel"

// burst creates n files in dir with one write each, then the sentinel.
func burst(ctx context.Context, dir string, n int) error {
	one := []byte{'x'}
	for i := range n + 1 {
		if i%1000 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		name := "f" + strconv.Itoa(i)
		if i == n {
			name = sentinel
		}
		fd, err := unix.Open(filepath.Join(dir, name), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		_, err = unix.Write(fd, one)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// readerRun runs one fd-mode reader process over a burst in a fresh tmpfs.
func (b *bench) readerRun(argv ...string) (readerResult, error) {
	dir, unmount, err := b.tmpfs("fanobench-burst")
	if err != nil {
		return readerResult{}, err
	}
	defer unmount()
	cmd := exec.CommandContext(b.ctx, argv[0], append(argv[1:], dir, sentinel)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return readerResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return readerResult{}, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	out := bufio.NewReader(pipe)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		return readerResult{}, fmt.Errorf("%s did not start: %q %v", argv[0], line, err)
	}
	if err := burst(b.ctx, dir, b.o.files); err != nil {
		return readerResult{}, err
	}
	return parseReaderResult(out)
}

// collectorRun runs the collector of a fresh fanotify.ext over a burst in
// a fresh tmpfs and returns its CPU time, what it saw, and its RSS.
func (b *bench) collectorRun() (readerResult, collectorFacts, error) {
	var facts collectorFacts
	dir, unmount, err := b.tmpfs("fanobench-burst")
	if err != nil {
		return readerResult{}, facts, err
	}
	defer unmount()
	cfg := config.Default()
	cfg.Collector.Enabled = true
	cfg.Collector.Paths = []string{dir}
	// The events the baseline readers read: one per file.
	cfg.Collector.Events = []string{"close_write"}
	cfg.Collector.BufferMax = 1000000
	e, stop, err := b.startExtension(cfg)
	if err != nil {
		return readerResult{}, facts, err
	}
	defer stop()
	time.Sleep(2 * time.Second)
	if facts.idleRSS, err = vmRSS(e.Pid); err != nil {
		return readerResult{}, facts, err
	}
	cpu0, err := processCPU(e.Pid)
	if err != nil {
		return readerResult{}, facts, err
	}
	if err := burst(b.ctx, dir, b.o.files); err != nil {
		return readerResult{}, facts, err
	}
	// Read until the event count stops growing.
	last, stable := -1, 0
	for stable < 3 {
		if err := b.ctx.Err(); err != nil {
			return readerResult{}, facts, err
		}
		time.Sleep(200 * time.Millisecond)
		n, err := e.collectorStat("events_total")
		if err != nil {
			return readerResult{}, facts, err
		}
		if n == last && n > 0 {
			stable++
		} else {
			stable = 0
		}
		last = n
	}
	cpu1, err := processCPU(e.Pid)
	if err != nil {
		return readerResult{}, facts, err
	}
	if facts.busyRSS, err = vmRSS(e.Pid); err != nil {
		return readerResult{}, facts, err
	}
	if facts.buffered, err = e.collectorStat("buffered"); err != nil {
		return readerResult{}, facts, err
	}
	if facts.overflows, err = e.collectorStat("overflows"); err != nil {
		return readerResult{}, facts, err
	}
	_, eventsStar := selectStar("fanotify_events")
	rows, err := e.generate("fanotify_events", eventsStar)
	if err != nil {
		return readerResult{}, facts, err
	}
	// Buffered events are there to be queried: the peak of a query of
	// them all counts as much as the memory holding them.
	if facts.queriedHWM, err = vmHWM(e.Pid); err != nil {
		return readerResult{}, facts, err
	}
	seen := make(map[string]bool)
	for _, r := range rows {
		if name, ok := strings.CutPrefix(r["path"], dir+"/f"); ok {
			seen[name] = true
		}
	}
	return readerResult{Files: len(seen), CPU: cpu1 - cpu0}, facts, nil
}

// peerReader is a tool admins run to see file events, measured beside the
// collector: its command line (run in the burst's directory, which it
// watches, printing one line per event with the file's path) and how to
// tell it is ready.
type peerReader struct {
	name  string
	argv  []string
	ready *regexp.Regexp // matches the fdinfo of its notify fd once it watches
}

// peerReaders are the peer tools installed here: fatrace (fanotify; -c marks
// the mount of its working directory, the tmpfs) and inotifywait (inotify,
// one watch on the directory); both keep close_write, as the readers do.
func (b *bench) peerReaders() []peerReader {
	var peers []peerReader
	for _, p := range []peerReader{
		{"fatrace", []string{"fatrace", "-c", "-f", "W"}, regexp.MustCompile(`(?m)^fanotify (ino|sdev|mnt_id):`)},
		{"inotifywait", []string{"inotifywait", "-m", "-q", "-e", "close_write", "--format", "%w%f", "."}, regexp.MustCompile(`(?m)^inotify wd:`)},
	} {
		if path, err := exec.LookPath(p.argv[0]); err == nil {
			p.argv[0] = path
			peers = append(peers, p)
		}
	}
	return peers
}

// peerRun runs a peer tool over a burst in a fresh tmpfs. Its CPU time
// counts from the burst until it stops growing (it reads and prints until
// then), as the collector's does.
func (b *bench) peerRun(peer peerReader) (readerResult, error) {
	dir, unmount, err := b.tmpfs("fanobench-burst")
	if err != nil {
		return readerResult{}, err
	}
	defer unmount()
	out, err := os.CreateTemp("", "fanobench-peer")
	if err != nil {
		return readerResult{}, err
	}
	defer b.cleanupOnce(func() {
		out.Close()
		os.Remove(out.Name())
	})()
	cmd := exec.CommandContext(b.ctx, peer.argv[0], peer.argv[1:]...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, out, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return readerResult{}, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if err := waitForFdinfo(cmd.Process.Pid, peer.ready); err != nil {
		return readerResult{}, fmt.Errorf("%s did not start: %w", peer.name, err)
	}
	cpu0, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return readerResult{}, err
	}
	if err := burst(b.ctx, dir, b.o.files); err != nil {
		return readerResult{}, err
	}
	cpu1, err := cpuUntilStable(b.ctx, cmd.Process.Pid)
	if err != nil {
		return readerResult{}, err
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	return readerResult{Files: filesSeen(out.Name()), CPU: cpu1 - cpu0}, nil
}

// waitForFdinfo waits until one of pid's fdinfo files matches ready.
func waitForFdinfo(pid int, ready *regexp.Regexp) error {
	for range 100 {
		infos, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
		for _, name := range infos {
			if text, err := os.ReadFile(name); err == nil && ready.Match(text) {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("pid %d placed no mark or watch in 5 s", pid)
}

// cpuUntilStable polls pid's CPU time until it stops growing.
func cpuUntilStable(ctx context.Context, pid int) (time.Duration, error) {
	last, stable := time.Duration(-1), 0
	for stable < 3 {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		time.Sleep(200 * time.Millisecond)
		cpu, err := processCPU(pid)
		if err != nil {
			return 0, err
		}
		if cpu == last {
			stable++
		} else {
			stable = 0
		}
		last = cpu
	}
	return last, nil
}

// filesSeen counts the burst's files (f0, f1, ...) named at the ends of
// an output's lines: the tools print paths relative to where they run or
// absolute.
func filesSeen(output string) int {
	text, _ := os.ReadFile(output)
	seen := make(map[string]bool)
	for line := range strings.Lines(string(text)) {
		name := path.Base(strings.TrimSpace(line))
		if n, ok := strings.CutPrefix(name, "f"); ok {
			if _, err := strconv.Atoi(n); err == nil {
				seen[name] = true
			}
		}
	}
	return len(seen)
}

// collectorFacts are what one collector run showed besides its CPU time.
type collectorFacts struct {
	idleRSS, busyRSS    int64
	queriedHWM          int64 // VmHWM after SELECT * FROM fanotify_events
	buffered, overflows int
}

func (b *bench) collectorPhase() error {
	reps := min(3, b.o.reps)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var facts []collectorFacts
	readers := []*readerSeries{
		{name: "Go fd-mode reader", run: func() (readerResult, error) { return b.readerRun(self, "fdreader") }},
	}
	if b.cbin.fdreader != "" {
		readers = append(readers, &readerSeries{name: "C fd-mode reader", run: func() (readerResult, error) { return b.readerRun(b.cbin.fdreader) }})
	}
	for _, p := range b.peerReaders() {
		readers = append(readers, &readerSeries{name: p.name, peer: true, run: func() (readerResult, error) { return b.peerRun(p) }})
	}
	collector := &readerSeries{name: "collector", run: func() (readerResult, error) {
		r, f, err := b.collectorRun()
		facts = append(facts, f)
		return r, err
	}}
	all := append(readers, collector)
	for rep := range reps {
		for _, s := range all {
			b.progress("collector: %s, run %d of %d, %d files", s.name, rep+1, reps, b.o.files)
			r, err := s.run()
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			s.cpu = append(s.cpu, r.CPU)
			if rep == 0 || r.Files < s.min {
				s.min = r.Files
			}
		}
	}
	perFile := func(s *readerSeries) cost {
		return cost{CPU: medianOf(s.cpu) / time.Duration(b.o.files)}
	}
	goRes, col := readers[0], collector
	var c *cost
	if cRes := readerNamed(readers, "C fd-mode reader"); cRes != nil {
		cc := perFile(cRes)
		c = &cc
	}
	b.addGoal(ratioGoal("collector CPU per created file", perFile(col), perFile(goRes), c, 1.0,
		fmt.Sprintf("%d files on tmpfs, one write each, median of %d bursts; the collector (FID mode, a filesystem mark) collects close_write like the readers; files seen (fewest over the runs): collector %d, %s%s",
			b.o.files, reps, col.min, readersSeen(readers), peersPerFile(readers, col, perFile))))
	readerSawAll := goRes.min == b.o.files
	b.addGoal(goal{Name: "collector sees every file when the reader does", Target: "all", Met: !readerSawAll || col.min == b.o.files,
		Ratio: float64(col.min) / float64(b.o.files),
		Note:  fmt.Sprintf("collector saw %d of %d files, the Go reader %d", col.min, b.o.files, goRes.min)})
	var idle, busy, queried []time.Duration // bytes, as durations to reuse medianOf
	buffered, overflows := 0, 0
	for _, f := range facts {
		idle = append(idle, time.Duration(f.idleRSS))
		busy = append(busy, time.Duration(f.busyRSS))
		queried = append(queried, time.Duration(f.queriedHWM))
		buffered, overflows = max(buffered, f.buffered), max(overflows, f.overflows)
	}
	busyRSS, queriedHWM := int64(medianOf(busy)), int64(medianOf(queried))
	b.rss = append(b.rss,
		rssFigure{"idle, collector enabled", int64(medianOf(idle)), 0, true},
		rssFigure{"after the burst, collector enabled", busyRSS, buffered, false},
		rssFigure{"after SELECT * FROM fanotify_events through the protocol: VmHWM, the peak since the start", queriedHWM, buffered, false})
	idleMax := int64(0)
	for _, f := range b.rss {
		if f.idle {
			idleMax = max(idleMax, f.bytes)
		}
	}
	b.addGoal(goal{Name: "RSS idle (largest of the idle figures)", Target: "≤ 20 MB", Ratio: float64(idleMax) / (1 << 20),
		Met: idleMax <= 20<<20, Note: mb(idleMax)})
	worst := max(busyRSS, queriedHWM)
	b.addGoal(goal{Name: fmt.Sprintf("RSS with %d buffered events", buffered),
		Target: "≤ 64 MB", Ratio: float64(worst) / (1 << 20), Met: worst <= 64<<20,
		Note: fmt.Sprintf("%s, the larger of VmRSS after the burst (%s) and VmHWM after a SELECT * of them (%s); %d overflows",
			mb(worst), mb(busyRSS), mb(queriedHWM), overflows)})
	return nil
}

// readerSeries is the runs of one reader over the bursts.
type readerSeries struct {
	name string
	peer bool // a tool of its own rather than a baseline
	run  func() (readerResult, error)
	cpu  []time.Duration
	min  int // fewest files seen over the runs
}

// readerNamed is the series of that name, nil when it did not run.
func readerNamed(readers []*readerSeries, name string) *readerSeries {
	for _, r := range readers {
		if r.name == name {
			return r
		}
	}
	return nil
}

// readersSeen names what each reader saw.
func readersSeen(readers []*readerSeries) string {
	var seen []string
	for _, r := range readers {
		seen = append(seen, fmt.Sprintf("%s %d", r.name, r.min))
	}
	return strings.Join(seen, ", ")
}

// peersPerFile tells what the peer tools cost per file, against the
// collector.
func peersPerFile(readers []*readerSeries, col *readerSeries, perFile func(*readerSeries) cost) string {
	var out string
	for _, r := range readers {
		if r.peer {
			out += fmt.Sprintf("; %s (peer tool, printing each event) %s per file, the collector %.2f× of it",
				r.name, ms(perFile(r).CPU), ratio(perFile(col), perFile(r)))
		}
	}
	return out
}
