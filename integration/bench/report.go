package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// The measured part of BENCHMARKS.md lies between these markers; text
// outside them is written by hand and kept.
const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

// writeReport puts report between the markers of the file at path, or
// writes a new file holding only it.
func writeReport(path, report string) error {
	block := beginMarker + "\n" + report + endMarker + "\n"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	before, rest, found := strings.Cut(string(old), beginMarker)
	_, after, closed := strings.Cut(rest, endMarker)
	if !found || !closed {
		return os.WriteFile(path, []byte("# Benchmarks\n\n"+block), 0o644)
	}
	return os.WriteFile(path, []byte(before+block+strings.TrimPrefix(after, "\n")), 0o644)
}

// report renders the results as Markdown, the measured part of
// BENCHMARKS.md.
func (b *bench) report() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	p("Measured by `make bench` (`go run ./integration/bench %s`), which builds a synthetic busy host, measures", strings.Join(os.Args[1:], " "))
	p("fanotify.ext against")
	p("minimal code making the same kernel reads in the same run, and removes what it built. This part, up to the end")
	p("marker, is rewritten by every run.")
	p("")
	p("- Date: %s", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	p("- Machine: %s", machine())
	p("- Command: `make bench` (as root; about %s on this machine)", b.elapsed().Round(time.Second))
	p("")
	p("### How it is measured")
	p("")
	p("- **CPU time** is user + system time of every thread: getrusage for the in-process runs, the C programs' own")
	p("  CLOCK_PROCESS_CPUTIME_ID, and for the fanotify.ext process the sum of /proc/PID/task/*/schedstat run times")
	p("  (nanoseconds; /proc/PID/stat's utime+stime count 10 ms ticks). Ratios are of CPU time unless a goal says wall.")
	p("- Every figure is the **median** of %d runs (%d for the smaller sizes of the Scale section and for the collector bursts,", b.o.reps, min(3, b.o.reps))
	p("  %d for the generates through the protocol). The runs of the things compared alternate (raw Go, project, ..., C",
		b.o.protoReps)
	p("  walk as a process of its own, raw Go, ...), so that each gets the same share of whatever else the machine is doing.")
	p("- **No snapshot cache is measured**: each in-process run builds a fresh Env, so its generate makes its own walk of")
	p("  /proc (tables generated in one run share that walk, as queries within the same second do). Calls through the")
	p("  protocol wait %s between calls, longer than the 1 s the extension reuses a walk.", snapshotAge)
	p("- **Through the protocol**, the extension's side is its process's CPU time from before the call to after the answer")
	p("  was read (reading the request, the table's stream: its walk and every row, Thrift encoding and writing; then idle),")
	p("  and the wall time from the call to that arrival, read ahead of the stand-in's Go decoder, which starts once the")
	p("  connection has been quiet for %s and is not counted: osqueryd decodes in C++, and decoding a large answer in", quiet)
	p("  Go costs more than generating it and, beside the extension on two CPUs, slowed the writes it waited for. The")
	p("  in-process side is what the extension runs before encoding: Runner.Stream on a fresh Env and a loop over its")
	p("  rows, which builds each (CPU by getrusage, wall from the call to the loop's end); nothing is encoded.")
	p("- **Verdicts**: a goal against raw baselines is judged on the ratio to the cheaper of the run's two, raw Go or raw")
	p("  C (the \"judged against\" column): both make the same kernel reads with the same system calls, and the cheaper")
	p("  is the nearer to what those reads cost. Both ratios are shown. The C mount_points SELECT * baseline is the C")
	p("  mountinfo read's cost plus the C walk's.")
	p("- The heap is collected before each in-process run, outside the measurement; the garbage a run makes is its own cost.")
	p("- The raw baselines (`integration/bench/raw.go`, `integration/bench/c/`) list /proc, readlink every fd and read the")
	p("  fdinfo of inotify and fanotify fds (walk); readlink /proc/PID/ns/mnt (and the other threads' of processes with")
	p("  more than one) and read one mountinfo per mount namespace (mountinfo); read a FAN_CLOSE_WRITE filesystem mark's")
	p("  events with a readlink (relative to /proc/self/fd, opened once) and a close per event (fd-mode reader). The walks")
	p("  and the mountinfo reads make the project's system calls: a directory opened, listed with getdents and closed, each")
	p("  fd readlinked relative to it, files read in pieces of 64 KiB; the Go ones allocate nothing per fd. mount_points")
	p("  also stats the root of each process of a namespace that several share, to read the namespace through the root")
	p("  that shows the most of it: a read of its own, not in the baseline.")
	p("  They parse nothing. The SELECT * goal's note adds walks that also read each holder's identity (a stat of /proc/PID,")
	p("  its ns/user and ns/mnt links, comm and cgroup), the kernel reads behind the holder columns that the walk lacks.")
	p("- The busy host: %d `sleep` processes, each holding (as fds handed over through exec) one inotify instance with %d", b.o.procs, b.o.watches)
	p("  watches and one fanotify group (FAN_REPORT_FID) with %d inode marks on files of its own on a tmpfs, created with the", b.o.marks)
	p("  holder's euid set on one thread (raw setresuid) so that each of the uids %d… is charged at most %d groups and", firstUID, holdersPerUID)
	p("  %d instances; no sysctl is changed. The mounts: %d bind mounts in a private mount namespace held by a `sleep`.", holdersPerUID, b.o.mounts)
	p("  The burst: %d files created on a fresh tmpfs with one write each, then a sentinel file.", b.o.files)
	p("")
	p("### Goals")
	p("")
	p("| goal | fanotify.ext CPU (wall) | Go baseline CPU (wall) | ratio to Go | raw C CPU (wall) | ratio to C | target | judged against | result |")
	p("|---|---|---|---|---|---|---|---|---|")
	for _, g := range b.goals {
		result := "met"
		if !g.Met {
			result = "**missed**"
		}
		proj, base, rat, cc, rc, judged := "", "", "", "", "", g.JudgedBy
		if g.Project != (cost{}) {
			toGo := g.Ratio // the wall ratio, for a goal on wall time
			if g.JudgedBy == "raw C" {
				toGo = ratio(g.Project, g.Baseline)
			}
			proj, base, rat = costCell(g.Project), costCell(g.Baseline), fmt.Sprintf("%.2f×", toGo)
		} else {
			rat = g.Note
		}
		if g.C != nil {
			cc, rc = costCell(*g.C), fmt.Sprintf("%.2f×", ratio(g.Project, *g.C))
		}
		if judged == "" {
			judged = "—"
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s |", g.Name, proj, base, rat, cc, rc, g.Target, judged, result)
	}
	p("")
	for _, g := range b.goals {
		if g.Project != (cost{}) && g.Note != "" {
			p("- %s: %s.", g.Name, g.Note)
		}
	}
	p("")
	if len(b.rss) > 0 {
		p("#### Memory of the fanotify.ext process (VmRSS, or VmHWM where said)")
		p("")
		var rows [][]string
		for _, r := range b.rss {
			rows = append(rows, []string{r.When, mb(r.bytes), fmt.Sprint(r.buffered)})
		}
		markdownTable(p, []string{"when", "bytes", "buffered events"}, rows)
	}
	if len(b.commands) > 0 {
		p("#### The command line, end to end")
		p("")
		p("Whole processes, as a user without osqueryd runs them: start, walk, SQL, output to /dev/null (median of %d", b.o.reps)
		p("alternating runs; CPU from the rusage of each process and the children it waited for). For reference, not a")
		p("goal: the query adds SQLite (every value crosses its virtual-table interface) and the printing of every row")
		p("to the walk. The peer rows are what admins run today, in the same alternation.")
		p("")
		var rows [][]string
		for _, c := range b.commands {
			rows = append(rows, []string{c.Name, costCell(c.Run), fmt.Sprintf("%.2f×", c.CRatio)})
		}
		markdownTable(p, []string{"command", "CPU (wall)", "CPU ratio to the C walk"}, rows)
	}
	b.scaleSection(p)
	if len(b.notes) > 0 {
		p("### Notes from this run")
		p("")
		for _, n := range b.notes {
			p("- %s", n)
		}
		p("")
	}
	return w.String()
}

// markdownTable writes a table with its header row and a blank line after.
// A | in a cell (a shell pipeline) is escaped, or it would end the cell.
func markdownTable(p func(string, ...any), header []string, rows [][]string) {
	p("| %s |", strings.Join(header, " | "))
	p("|%s", strings.Repeat("---|", len(header)))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		p("| %s |", strings.Join(cells, " | "))
	}
	p("")
}

func costCell(c cost) string {
	if c.Wall == 0 {
		return ms(c.CPU)
	}
	return fmt.Sprintf("%s (%s)", ms(c.CPU), ms(c.Wall))
}

// machine describes the CPU, memory, kernel and toolchains.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range bytes.Lines(data) {
			if rest, ok := bytes.CutPrefix(line, []byte("model name")); ok {
				_, name, _ := bytes.Cut(rest, []byte(":"))
				model = string(bytes.TrimSpace(name))
				break
			}
		}
	}
	var kernel string
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(data))
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(data), "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf(", %.0f GB RAM", float64(kb)/(1<<20))
	}
	cc := "no C compiler"
	if out, err := exec.Command("gcc", "--version").Output(); err == nil {
		cc, _, _ = strings.Cut(string(out), "\n")
	}
	return fmt.Sprintf("%s, %d CPUs%s, Linux %s, %s, %s", model, runtime.NumCPU(), mem, kernel, runtime.Version(), cc)
}
