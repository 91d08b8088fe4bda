package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// bench holds the run's options, what it created (for cleanup) and its
// results.
type bench struct {
	// ctx ends when the run is interrupted: phases stop at their next step.
	ctx     context.Context
	o       options
	start   time.Time
	cbin    cBaselines
	profile io.Writer

	mu       sync.Mutex
	cleanups []func()

	goals  []goal
	scales []scaleRow
	rss    []rssFigure
	// watchRSS is the VmRSS of two extensions by the watches held on the
	// host: one after fanotify_limits, one after a query parsing every mark.
	watchRSS []watchRSS
	commands []commandFigure
	notes    []string
}

type watchRSS struct {
	Watches int
	// Counted is after fanotify_limits, whose snapshot counts the watches;
	// Parsed after mount_points's mark counts, whose snapshot keeps every
	// mark.
	Counted, Parsed int64
}

// rssFigure is one reading of the fanotify.ext process's memory: VmRSS,
// or VmHWM where When says so.
type rssFigure struct {
	When     string
	bytes    int64
	buffered int
	idle     bool // no query or event handled yet
}

// goal is one line of the goals table.
type goal struct {
	Name     string
	Project  cost
	Baseline cost // the Go baseline: minimal raw Go, or the in-process run
	C        *cost
	Target   string
	// Met tells whether the goal holds; Ratio is the ratio it is judged
	// on, to the baseline JudgedBy names ("" for a goal of its own kind).
	Ratio    float64
	Met      bool
	JudgedBy string
	Note     string
}

// ratioGoal is the goal that project's CPU time be at most limit times the
// cheaper raw baseline of the run: the C one where it ran and cost less
// than the Go one. A baseline is the least the same kernel reads can cost;
// judging on a dearer one would credit the project with its overhead.
func ratioGoal(name string, project, goBaseline cost, c *cost, limit float64, note string) goal {
	g := goal{Name: name, Project: project, Baseline: goBaseline, C: c, Target: fmt.Sprintf("≤ %.1f×", limit),
		JudgedBy: "raw Go", Note: note}
	base := goBaseline
	if c != nil && c.CPU < goBaseline.CPU {
		g.JudgedBy, base = "raw C", *c
	}
	g.Ratio = ratio(project, base)
	g.Met = g.Ratio <= limit
	return g
}

// scaleRow is one size of one scale series.
type scaleRow struct {
	Series string
	Size   string
	Units  int // processes, watches or mounts
	Items  []namedCost
}

type namedCost struct {
	Name string
	Cost cost
}

func newBench(ctx context.Context, o options) (*bench, error) {
	if _, err := os.Stat(o.ext); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build` first)", o.ext, err)
	}
	b := &bench{ctx: ctx, o: o, start: time.Now()}
	var err error
	if b.cbin, err = buildCBaselines(); err != nil {
		b.note("C baselines not built: %v", err)
	}
	if b.cbin.dir != "" {
		b.onCleanup(func() { os.RemoveAll(b.cbin.dir) })
	}
	if commands, packages := missingPeers(exec.LookPath); len(commands) > 0 {
		b.note("peer tools not installed: %s; their rows are left out (install them with `apt-get install %s`)",
			strings.Join(commands, ", "), strings.Join(packages, " "))
	}
	return b, nil
}

// peerTools are the tools admins run today that the bench measures beside
// fanotify.ext, with the Debian package of each.
var peerTools = []struct{ command, pkg string }{
	{"fatrace", "fatrace"},
	{"inotifywait", "inotify-tools"},
	{"lsof", "lsof"},
}

// missingPeers names the peer tools lookPath does not find, and the
// packages that install them.
func missingPeers(lookPath func(string) (string, error)) (commands, packages []string) {
	for _, p := range peerTools {
		if _, err := lookPath(p.command); err != nil {
			commands, packages = append(commands, p.command), append(packages, p.pkg)
		}
	}
	return commands, packages
}

func (b *bench) onCleanup(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanups = append(b.cleanups, f)
}

// cleanupOnce registers stop as a cleanup and returns it for the phase to
// defer; stop runs once, whether the phase or a signal gets there first.
func (b *bench) cleanupOnce(stop func()) func() {
	var once sync.Once
	stopOnce := func() { once.Do(stop) }
	b.onCleanup(stopOnce)
	return stopOnce
}

// tmpfs mounts a fresh tmpfs, removed at the cleanup if not before by the
// function returned.
func (b *bench) tmpfs(prefix string) (string, func(), error) {
	dir, err := mountTmpfs(prefix)
	if err != nil {
		return "", nil, err
	}
	return dir, b.cleanupOnce(func() { unmountTmpfs(dir) }), nil
}

// cleanup undoes everything, newest first; it may run twice (signal).
func (b *bench) cleanup() {
	b.mu.Lock()
	fs := b.cleanups
	b.cleanups = nil
	b.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
	fmt.Fprintln(os.Stderr, "bench: note:", fmt.Sprintf(format, args...))
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: %s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *bench) runPhases() error {
	phases := []struct {
		name string
		run  func() error
	}{
		{"mounts", b.mountPhase},
		{"host", b.hostPhase},
		{"watches", b.watchPhase},
		{"collector", b.collectorPhase},
	}
	if b.profile != nil {
		// The profile covers the harness too: the raw baselines show as
		// rawWalk and rawMountinfo.
		if err := pprof.StartCPUProfile(b.profile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for _, p := range phases {
		if b.o.only != "" && b.o.only != p.name {
			continue
		}
		if p.name == "watches" && !b.o.scale {
			continue
		}
		if err := p.run(); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}

func (b *bench) missed() int {
	n := 0
	for _, g := range b.goals {
		if !g.Met {
			n++
		}
	}
	return n
}

var discard = slog.New(slog.DiscardHandler)

// Query contexts as osqueryd sends them: SELECT * reads every column but
// the hidden ones, SELECT COUNT(*) none.
var (
	selectCount = tables.NewQueryContext(nil, []string{})
	// everyColumn is SELECT * plus the hidden columns, such as the path of
	// the per-mark tables, which decodes every mark's file handle.
	everyColumn = tables.NewQueryContext(nil, nil)
	// mountColumnsOnly is mount_points without its mark counts, which
	// need a walk of every process's fds.
	mountColumnsOnly = tables.NewQueryContext(nil, []string{"mnt_ns", "pid", "mount_id", "parent_id", "device", "root", "path", "fs_type", "source", "options", "super_options", "propagation", "reachable"})
)

var (
	notifyStar, _      = selectStar("fanotify_marks", "inotify_watches")
	watchesStar, _     = selectStar("inotify_watches")
	limitsStar, _      = selectStar("fanotify_limits")
	mountPointsStar, _ = selectStar("mount_points")
)

// selectStar is the context of SELECT * on the named tables: the columns
// osqueryd reports used, every column that is not hidden, and that list as
// the JSON osqueryd sends.
func selectStar(names ...string) (tables.QueryContext, string) {
	env := tables.NewEnv(config.Default(), discard)
	defer env.Close()
	var cols []string
	for _, t := range tables.All(env) {
		if !slices.Contains(names, t.Name) {
			continue
		}
		for _, c := range t.Columns {
			if !c.Hidden && !slices.Contains(cols, c.Name) {
				cols = append(cols, c.Name)
			}
		}
	}
	data, _ := json.Marshal(map[string][]string{"colsUsed": cols})
	return tables.NewQueryContext(nil, cols), string(data)
}

// generate runs tables with a fresh Env, as a query arriving when the
// snapshot cache has expired: every run pays for its own walk of /proc.
// Tables generated in one call share that walk, as queries within a second
// do. It fails unless every table returns at least minRows rows.
func generate(q tables.QueryContext, minRows int, names ...string) func() error {
	return func() error {
		r, done := freshRunner()
		defer done()
		return generateWith(r, q, minRows, names)
	}
}

// generateWith runs tables with r.
func generateWith(r *tables.Runner, q tables.QueryContext, minRows int, names []string) error {
	for _, name := range names {
		rows, err := r.Generate(context.Background(), name, q)
		if err != nil {
			return err
		}
		if len(rows) < minRows {
			return fmt.Errorf("%s: %d rows, want at least %d", name, len(rows), minRows)
		}
	}
	return nil
}

// stream runs a table as the extension answers a generate, with a fresh
// Env as generate: Runner.Stream, then a loop over All, which builds every
// row (the extension encodes each as it is built).
func stream(q tables.QueryContext, minRows int, name string) func() error {
	return func() error {
		r, done := freshRunner()
		defer done()
		rows, err := r.Stream(context.Background(), name, q)
		if err != nil {
			return err
		}
		n := 0
		for range rows.All {
			n++
		}
		if n < minRows {
			return fmt.Errorf("%s: %d rows, want at least %d", name, n, minRows)
		}
		return nil
	}
}

// longLived measures tables as a long-lived extension answers queries
// spaced apart (osqueryd's schedule): one Env for every run, whose walk
// before is past the time a snapshot serves, so that each run walks /proc
// again, knowing what the walk before found. The item's before waits for
// that; the runner is warmed by one query; close ends it.
func longLived(name string, q tables.QueryContext, minRows int, names ...string) (it item, close func(), err error) {
	r, close := freshRunner()
	run := func() error { return generateWith(r, q, minRows, names) }
	if err := run(); err != nil {
		close()
		return item{}, nil, err
	}
	last := time.Now()
	wait := func() {
		time.Sleep(time.Until(last.Add(fanotify.SnapshotMaxAge)))
	}
	return item{name: name, before: wait, run: func() error {
		defer func() { last = time.Now() }()
		return run()
	}}, close, nil
}

// freshRunner is a Runner of every table on a fresh Env, and the function
// that closes it.
func freshRunner() (*tables.Runner, func()) {
	// The sizes measured pass max_rows, osqueryd's guardrail.
	cfg := config.Default()
	cfg.MaxRows = math.MaxInt
	env := tables.NewEnv(cfg, discard)
	return tables.NewRunner(tables.All(env), time.Minute, 4, discard), env.Close
}

// item is one thing to measure: the project's code or a raw baseline,
// run in this process (run), or in another that reports its own cost
// (self). before, when set, runs before each run, unmeasured.
type item struct {
	name   string
	run    func() error
	self   func() (cost, error)
	before func()
}

// measure runs the items in turn, reps rounds of one run each, and returns
// each item's median cost. Interleaving the items gives each the same
// share of whatever else the machine is doing. Samples of the CPU profile
// carry the label measure=name (pprof -tagfocus).
func (b *bench) measure(reps int, items ...item) ([]cost, error) {
	runs := make([][]cost, len(items))
	for range reps {
		for i, it := range items {
			if err := b.ctx.Err(); err != nil {
				return nil, err
			}
			var c cost
			var err error
			if it.before != nil {
				it.before()
			}
			if it.self != nil {
				c, err = it.self()
			} else {
				pprof.Do(context.Background(), pprof.Labels("measure", it.name), func(context.Context) {
					c, err = measureOnce(it.run)
				})
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", it.name, err)
			}
			runs[i] = append(runs[i], c)
		}
	}
	out := make([]cost, len(items))
	for i, r := range runs {
		out[i] = median(r)
	}
	return out, nil
}

// rawRun wraps a raw Go baseline, which reads with a reader it is lent.
func rawRun(f func(*rawReader) (int, error)) func() error {
	r := newRawReader()
	return func() error {
		n, err := f(r)
		if err == nil && n == 0 {
			err = fmt.Errorf("read nothing")
		}
		return err
	}
}

// ratio is a/b of CPU time.
func ratio(a, b cost) float64 {
	if b.CPU == 0 {
		return 0
	}
	return float64(a.CPU) / float64(b.CPU)
}

func (b *bench) addGoal(g goal) {
	b.goals = append(b.goals, g)
	status := "met"
	if !g.Met {
		status = "MISSED"
	}
	against := ""
	if g.JudgedBy != "" {
		against = "against " + g.JudgedBy + " "
	}
	b.progress("goal %-45s %5.2fx %s(target %s) %s", g.Name, g.Ratio, against, g.Target, status)
}

// plural is "1 process", "2 processes", "3 bind mounts".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	if strings.HasSuffix(word, "s") {
		return fmt.Sprintf("%d %ses", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// ms formats a duration in milliseconds, or microseconds below one.
func ms(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%.2f µs", float64(d)/1e3)
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

func mb(bytes int64) string { return fmt.Sprintf("%.1f MB", float64(bytes)/(1<<20)) }
