package main

import (
	"context"
	"errors"
	"fmt"
	"os"
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
// walk as a process of its own, alternating, reps runs each; holder is the
// pid of one holder of the busy host, for a query constrained to it.
func (b *bench) commandLine(reps, holder int) error {
	if b.cbin.walk == "" {
		return nil
	}
	defaults := filepath.Join(b.cbin.dir, "defaults.json")
	if err := os.WriteFile(defaults, []byte("{}"), 0o644); err != nil {
		return err
	}
	query := func(sql string) []string { return []string{b.o.ext, "query", "--config", defaults, sql} }
	commands := []command{
		{"C walk (one walk, as a process)", []string{b.cbin.walk, "1"}, false},
		{"`fanotify.ext query \"SELECT COUNT(*) FROM inotify_watches\"`", query("SELECT COUNT(*) FROM inotify_watches"), false},
		{"`fanotify.ext query \"SELECT instance_id, watches FROM inotify_instances\"` (watches per instance)",
			query("SELECT instance_id, watches FROM inotify_instances"), false},
		{"`fanotify.ext query \"SELECT * FROM inotify_watches\"` (pretty table)", query("SELECT * FROM inotify_watches"), false},
		{"`fanotify.ext query \"SELECT * FROM fanotify_marks\"` (pretty table)", query("SELECT * FROM fanotify_marks"), false},
		{"`fanotify.ext query \"SELECT * FROM inotify_watches WHERE pid = ...\"` (one holder's watches)",
			query(fmt.Sprintf("SELECT * FROM inotify_watches WHERE pid = %d", holder)), false},
		{"`fanotify.ext report`", []string{b.o.ext, "report", "--config", defaults}, true},
	}
	commands = append(commands, b.peerCommands()...)
	runs := make([][]cost, len(commands))
	for range reps {
		for i, c := range commands {
			r, err := runCommand(b.ctx, c.argv, c.rated)
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

// command is one command line to measure.
type command struct {
	name string
	argv []string
	// rated tells a command whose exit code rates what it found (the
	// report's monitoring-plugin codes, grep's 1 for a file without a
	// match) rather than success.
	rated bool
}

// peerCommands are what admins run today to find who holds inotify and
// fanotify fds, where installed: the shell pipeline that counts each
// instance's watches (the inotify-consumers scripts do so), and lsof, which
// lists every open file and shows the fds but not their marks.
func (b *bench) peerCommands() []command {
	peers := []command{{
		"peer: `find /proc/*/fd -lname anon_inode:inotify -printf '%hinfo/%f\\n' | xargs grep -c '^inotify'` (watches per instance)",
		[]string{"sh", "-c", `find /proc/*/fd -lname anon_inode:inotify -printf '%hinfo/%f\n' 2>/dev/null | xargs grep -c '^inotify' >/dev/null`},
		true}}
	if _, err := exec.LookPath("lsof"); err == nil {
		peers = append(peers, command{"peer: `lsof -n -P -w` (every open file; the inotify and fanotify fds, not their marks)",
			[]string{"lsof", "-n", "-P", "-w"}, true})
	}
	return peers
}

// runCommand runs argv with its output discarded. A non-zero exit is an
// error unless rated (then only a failure to run or a signal is). Its CPU
// time is user + system time from the rusage wait returns. (That rusage's
// peak RSS is no use here: it counts this process's, which the child shared
// until its exec.)
func runCommand(ctx context.Context, argv []string, rated bool) (cost, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if ctx.Err() != nil {
		return cost{}, ctx.Err()
	}
	var exit *exec.ExitError
	if err != nil && !(rated && errors.As(err, &exit) && exit.Exited()) {
		return cost{}, fmt.Errorf("%w: %s", err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cost{CPU: cpu, Wall: wall}, nil
}
