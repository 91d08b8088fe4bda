package main

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// commandFigure is the median run of one command line.
type commandFigure struct {
	Name   string
	Run    cost
	CRatio float64 // CPU against the C walk's process
}

// commandLine measures fanotify.ext's subcommands as a user without
// osqueryd runs them (start, walk, SQL, output to /dev/null), and the C
// walk as a process of its own, alternating, reps runs each.
func (b *bench) commandLine(reps int) error {
	if b.cbin.walk == "" {
		return nil
	}
	noConfig := filepath.Join(b.cbin.dir, "absent.json") // defaults
	commands := []struct {
		name string
		argv []string
		// rated tells a command whose exit code rates what it found (the
		// report's monitoring-plugin codes) rather than success.
		rated bool
	}{
		{"C walk (one walk, as a process)", []string{b.cbin.walk, "1"}, false},
		{"`fanotify.ext query \"SELECT COUNT(*) FROM inotify_watches\"`", []string{b.o.ext, "query", "--config", noConfig, "SELECT COUNT(*) FROM inotify_watches"}, false},
		{"`fanotify.ext query \"SELECT * FROM inotify_watches\"` (pretty table)", []string{b.o.ext, "query", "--config", noConfig, "SELECT * FROM inotify_watches"}, false},
		{"`fanotify.ext query \"SELECT * FROM fanotify_marks\"` (pretty table)", []string{b.o.ext, "query", "--config", noConfig, "SELECT * FROM fanotify_marks"}, false},
		{"`fanotify.ext report`", []string{b.o.ext, "report", "--config", noConfig}, true},
	}
	runs := make([][]cost, len(commands))
	for range reps {
		for i, c := range commands {
			r, err := runCommand(c.argv, c.rated)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			runs[i] = append(runs[i], r)
		}
	}
	walk := median(runs[0])
	for i, c := range commands {
		m := median(runs[i])
		b.commands = append(b.commands, commandFigure{Name: c.name, Run: m, CRatio: ratio(m, walk)})
	}
	return nil
}

// runCommand runs argv with its output discarded. A non-zero exit is an
// error unless rated (then only a failure to run or a signal is). Its CPU
// time is user + system time from the rusage wait returns. (That rusage's
// peak RSS is no use here: it counts this process's, which the child shared
// until its exec.)
func runCommand(argv []string, rated bool) (cost, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var exit *exec.ExitError
	if err != nil && !(rated && errors.As(err, &exit) && exit.Exited()) {
		return cost{}, fmt.Errorf("%w: %s", err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cost{CPU: cpu, Wall: wall}, nil
}
