// Command bench measures fanotify.ext on a synthetic busy host that it builds
// and removes, against minimal raw code making the same kernel reads in the
// same run (Go, and C when a compiler is found), and writes the ratios to
// BENCHMARKS.md. `make bench` runs it as root; it is too heavy for CI.
//
// It exits non-zero on a harness error, and with -strict also when a goal
// is missed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

type options struct {
	ext        string
	out        string
	reps       int
	protoReps  int
	procs      int
	watches    int
	marks      int
	mounts     int
	files      int
	scale      bool
	strict     bool
	cpuProfile string
	only       string
}

func main() {
	if len(os.Args) == 4 && os.Args[1] == "fdreader" {
		if err := fdReaderMain(os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "fdreader:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.ext, "ext", "build/fanotify.ext", "the fanotify.ext binary to run through the osquery protocol")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "where to write the results (empty: only print them)")
	flag.IntVar(&o.reps, "reps", 9, "runs per measurement; the median is reported")
	flag.IntVar(&o.protoReps, "protocol-reps", 9, "runs per generate through the protocol, whose wall time varies most")
	flag.IntVar(&o.procs, "procs", 1000, "holder processes of the busy host")
	flag.IntVar(&o.watches, "watches", 50, "inotify watches per holder")
	flag.IntVar(&o.marks, "marks", 20, "fanotify marks per holder")
	flag.IntVar(&o.mounts, "mounts", 10000, "bind mounts in the private mount namespace")
	flag.IntVar(&o.files, "files", 100000, "files of the creation burst")
	flag.BoolVar(&o.scale, "scale", true, "also measure smaller sizes for the Scale section")
	flag.BoolVar(&o.strict, "strict", false, "exit 1 when a goal is missed")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the in-process project runs to this file")
	flag.StringVar(&o.only, "only", "", "run one phase only: mounts, host, watches or collector (for profiling)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: run as root: it creates mounts, namespaces and other users' fanotify groups")
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o options) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := newBench(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	defer b.cleanup()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go b.stopOn(sigs, cancel)

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
		defer f.Close()
		b.profile = f
	}
	if err := b.runPhases(); err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	report := b.report()
	fmt.Print(report)
	if o.out != "" && o.only == "" {
		if err := writeReport(o.out, report); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
		fmt.Fprintln(os.Stderr, "bench: wrote", o.out)
	}
	if o.strict && b.missed() > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d goal(s) missed\n", b.missed())
		return 1
	}
	return 0
}

// stopOn cancels the run at the first signal: the phase stops and removes
// what it built, and run's cleanup removes the rest, never while a phase
// still uses it. A second signal cleans up at once and exits, for a phase
// that does not stop.
func (b *bench) stopOn(sigs <-chan os.Signal, cancel func()) {
	<-sigs
	fmt.Fprintln(os.Stderr, "bench: interrupted: stopping, then removing what the run built (interrupt again to remove it at once)")
	cancel()
	<-sigs
	b.cleanup()
	os.Exit(2)
}
