package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A shell pipeline in a cell stays one cell.
func TestMarkdownTableEscapesPipes(t *testing.T) {
	var out strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }
	markdownTable(p, []string{"command", "CPU"}, [][]string{{"`find | xargs grep`", "1 ms"}})
	want := "| command | CPU |\n|---|---|\n| `find \\| xargs grep` | 1 ms |\n\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// The burst's files are counted once each, in fatrace's and inotifywait's
// lines alike; other files are not.
func TestFilesSeen(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	lines := "sh(12): CWO /tmp/fanobench-burst1/f1\n./f2\n./f1\n./zz-sentinel\nsh(12): W /tmp/fanobench-burst1/fx\n"
	if err := os.WriteFile(out, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := filesSeen(out); n != 2 {
		t.Fatalf("%d files seen in %q, want 2", n, lines)
	}
}

// A goal against raw baselines is judged on the cheaper one, and says which.
func TestRatioGoalIsJudgedOnTheCheaperBaseline(t *testing.T) {
	project, goWalk := cost{CPU: 120}, cost{CPU: 100}
	cWalk := cost{CPU: 80}
	g := ratioGoal("walk", project, goWalk, &cWalk, 1.3, "")
	if g.Met || g.JudgedBy != "raw C" || g.Ratio != 1.5 {
		t.Errorf("against a cheaper C walk: met %v, judged by %q at %.2f×, want missed, raw C, 1.50×", g.Met, g.JudgedBy, g.Ratio)
	}
	cWalk = cost{CPU: 110}
	g = ratioGoal("walk", project, goWalk, &cWalk, 1.3, "")
	if !g.Met || g.JudgedBy != "raw Go" || g.Ratio != 1.2 {
		t.Errorf("against a cheaper Go walk: met %v, judged by %q at %.2f×, want met, raw Go, 1.20×", g.Met, g.JudgedBy, g.Ratio)
	}
	if g = ratioGoal("walk", project, goWalk, nil, 1.3, ""); g.JudgedBy != "raw Go" {
		t.Errorf("without a C walk, judged by %q", g.JudgedBy)
	}
}

// The peer tools not installed are named with the packages to install.
func TestMissingPeersNamesThePackages(t *testing.T) {
	onlyLsof := func(name string) (string, error) {
		if name == "lsof" {
			return "/usr/bin/lsof", nil
		}
		return "", os.ErrNotExist
	}
	commands, packages := missingPeers(onlyLsof)
	if strings.Join(commands, " ") != "fatrace inotifywait" || strings.Join(packages, " ") != "fatrace inotify-tools" {
		t.Fatalf("missing %q, packages %q", commands, packages)
	}
}
