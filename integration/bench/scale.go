package main

import (
	"slices"
	"strings"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
)

// perUnit is the growth of an item's CPU time per unit (process, watch or
// mount) between the smallest and the largest size of a series, and the
// CPU time it projects at units.
type perUnit struct {
	slopeNs float64 // CPU nanoseconds per unit
	base    cost
	baseU   int
}

func (u perUnit) at(units int) time.Duration {
	return u.base.CPU + time.Duration(u.slopeNs*float64(units-u.baseU))
}

// growth fits the item named name of a series.
func (b *bench) growth(series, name string) (perUnit, bool) {
	var rows []scaleRow
	for _, r := range b.scales {
		if r.Series == series {
			rows = append(rows, r)
		}
	}
	if len(rows) < 2 {
		return perUnit{}, false
	}
	first, last := rows[0], rows[len(rows)-1]
	c0, ok0 := itemCost(first, name)
	c1, ok1 := itemCost(last, name)
	if !ok0 || !ok1 || last.Units == first.Units {
		return perUnit{}, false
	}
	s := float64(c1.CPU-c0.CPU) / float64(last.Units-first.Units)
	return perUnit{slopeNs: s, base: c1, baseU: last.Units}, true
}

func itemCost(r scaleRow, name string) (cost, bool) {
	for _, it := range r.Items {
		if it.Name == name {
			return it.Cost, true
		}
	}
	return cost{}, false
}

func (b *bench) scaleSection(p func(string, ...any)) {
	if len(b.scales) == 0 {
		return
	}
	p("### Scale")
	p("")
	p("CPU time (wall) of one run at each size; the last column of each item's line below the table is its growth per")
	p("unit between the smallest and the largest size.")
	var order []string
	for _, r := range b.scales {
		if !slices.Contains(order, r.Series) {
			order = append(order, r.Series)
		}
	}
	for _, series := range order {
		var rows []scaleRow
		for _, r := range b.scales {
			if r.Series == series {
				rows = append(rows, r)
			}
		}
		p("")
		p("#### %s", strings.ToUpper(series[:1])+series[1:])
		p("")
		var head []string
		for _, it := range rows[0].Items {
			head = append(head, it.Name)
		}
		p("| size | %s |", strings.Join(head, " | "))
		p("|---|%s", strings.Repeat("---|", len(head)))
		for _, r := range rows {
			var cells []string
			for _, it := range r.Items {
				cells = append(cells, costCell(it.Cost))
			}
			p("| %s | %s |", r.Size, strings.Join(cells, " | "))
		}
		p("")
		unit := map[string]string{"processes": "process", "watches": "watch", "mounts": "mount"}[series]
		for _, name := range head {
			if g, ok := b.growth(series, name); ok {
				p("- %s: %.1f µs CPU per %s.", name, g.slopeNs/1e3, unit)
			}
		}
	}
	b.memoryScale(p)
	b.extrapolation(p)
}

// memoryScale shows the extension's memory as the watches grow.
func (b *bench) memoryScale(p func(string, ...any)) {
	if len(b.watchRSS) < 2 {
		return
	}
	p("")
	p("#### Memory")
	p("")
	p("VmRSS of two fanotify.ext processes (through the protocol, collector disabled), each keeping its snapshot for a")
	p("second: one after `fanotify_limits`, whose snapshot counts the inotify watches, one after `mount_points` with")
	p("its `inotify_watches` column, whose snapshot keeps every mark (as any query showing the marks does):")
	p("")
	p("| watches on the host | after fanotify_limits | after mount_points (every mark kept) |")
	p("|---|---|---|")
	for _, r := range b.watchRSS {
		p("| %d | %s | %s |", r.Watches, mb(r.Counted), mb(r.Parsed))
	}
	p("")
	p("- %.0f bytes per watch after fanotify_limits, %.0f with every mark kept.",
		b.bytesPerWatch(countedRSS), b.bytesPerWatch(parsedRSS))
}

func countedRSS(r watchRSS) int64 { return r.Counted }
func parsedRSS(r watchRSS) int64  { return r.Parsed }

// bytesPerWatch is the growth of one of the VmRSS figures per watch held
// on the host, between the smallest and the largest size.
func (b *bench) bytesPerWatch(of func(watchRSS) int64) float64 {
	first, last := b.watchRSS[0], b.watchRSS[len(b.watchRSS)-1]
	return float64(of(last)-of(first)) / float64(last.Watches-first.Watches)
}

// extrapolation projects the measured growth to very large hosts and
// names the guardrails.
func (b *bench) extrapolation(p func(string, ...any)) {
	mounts, okM := b.growth("mounts", "mount_points SELECT *")
	mountsOnly, okMO := b.growth("mounts", "mount_points, mount columns only")
	watchAll, okW := b.growth("watches", "inotify_watches SELECT *")
	watchCount, okWC := b.growth("watches", "inotify_watches COUNT(*)")
	watchRaw, okWR := b.growth("watches", "raw walk (Go)")
	procs, okP := b.growth("processes", "fanotify_limits")
	p("")
	p("#### Very large hosts")
	p("")
	p("Linear projections from the growth above (costs grow linearly with each dimension: one walk reads each fd,")
	p("each fdinfo line and each mountinfo line once; the queries that show a group's identity add about")
	p("log2(groups) kcmp calls per notify fd to match fds to groups, one for the fds a snapshot before found; nothing is")
	p("quadratic):")
	p("")
	if okM && okMO {
		p("- **100,000 mounts**: `mount_points` SELECT * about %s CPU, %s without the mark counts.",
			ms(mounts.at(100000)), ms(mountsOnly.at(100000)))
	}
	if okW && okWC && okWR {
		p("- **1,000,000 inotify watches**: the raw walk alone about %s CPU, `inotify_watches` COUNT(*) about %s,",
			ms(watchRaw.at(1000000)), ms(watchCount.at(1000000)))
		p("  SELECT * about %s (both over the default `max_rows`, which refuses them unless a query narrows to fewer",
			ms(watchAll.at(1000000)))
		p("  rows). The kernel formats each instance's fdinfo under its lock (about %.1f µs per watch here), stalling",
			watchRaw.slopeNs/1e3)
		p("  that instance's owner for the whole read.")
	}
	if len(b.watchRSS) >= 2 {
		last, perWatch := b.watchRSS[len(b.watchRSS)-1], b.bytesPerWatch(parsedRSS)
		p("- **Memory at 1,000,000 watches**: about %s of VmRSS after a query that keeps every mark (%.0f bytes per",
			mb(last.Parsed+int64(perWatch*float64(1000000-last.Watches))), perWatch)
		p("  watch: the snapshot keeps every mark packed, about 22 bytes for a watch, plus the garbage of reading them);")
		p("  `fanotify_limits` and COUNT(*) keep none. A SELECT * of `inotify_watches` through osqueryd's protocol")
		p("  holds one holder's rows at a time (see the VmRSS after the protocol queries above); `fanotify.ext query`")
		p("  holds its result whole, and `max_rows` bounds how many there are.")
	}
	if okP {
		p("- **Processes**: `fanotify_limits` grows by %.1f µs per holder process (with its %d watches and %d marks).",
			procs.slopeNs/1e3, b.o.watches, b.o.marks)
	}
	p("")
	p("Guardrails that keep the extension inside osquery's watchdog (when enabled for extensions: 200 MB, 10%% CPU sustained):")
	p("")
	p("- `scan_budget_ms` (default 10000) bounds one walk of /proc; a walk over it stops, `scan_complete` is 0 and")
	p("  usage is a lower bound, rather than the query running on.")
	p("- `generate_timeout_s` (60) bounds a generate and `max_concurrent_generates` (4) the generates running at once;")
	p("  queries arriving within a second of the end of a walk share it.")
	p("- Fleet schedules read the summary tables only (`fanotify_limits`, `fanotify_groups`, `inotify_instances`),")
	p("  whose result is a row per limit, group or instance, never per mark: the shipped queries run hourly, so even a")
	p("  one-second walk is under 0.03%% of one CPU. `fanotify_marks` and `inotify_watches` are for ad hoc queries;")
	p("  COUNT(*) and queries that read few columns skip the per-row work, and `path`, hidden from SELECT *, is")
	p("  resolved only when a query names it.")
	p("- `max_rows` (%d) refuses a `fanotify_marks` or `inotify_watches` query whose result would pass it, before a", config.Default().MaxRows)
	p("  row is built, naming the count and what to constrain: osqueryd holds a whole result in its worker, whose own")
	p("  watchdog (on by default) restarts it over 200 MB. The measurements above raise it.")
	p("- `mount_points` reads the mark counts (a walk) only when a count column is read.")
	if len(b.watchRSS) >= 2 {
		first, perWatch := b.watchRSS[0], b.bytesPerWatch(parsedRSS)
		limit := first.Watches + int((200<<20-float64(first.Parsed))/perWatch)
		p("- A snapshot that keeps the marks holds them packed (%.0f bytes of VmRSS a watch here), up to %d of them;", perWatch, fanotify.KeptMarks)
		p("  past that it counts the rest, and the groups a query shows have their marks read again. Without that cap")
		p("  the extension would pass the watchdog's 200 MB from about %d watches on the host. The scheduled summary", limit)
		p("  queries count the marks and keep none. A result row holds the values its query reads and shares its")
		p("  holder's; through the protocol one holder's rows are held at a time, and `max_rows` bounds the rest.")
	}
}

// elapsed is how long the run has taken so far.
func (b *bench) elapsed() time.Duration { return time.Since(b.start) }
