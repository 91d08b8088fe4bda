package main

import (
	"bufio"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed c/*.c
var cSources embed.FS

// cBaselines are the C versions of the raw walk and of the fd-mode reader,
// compiled for this run; dir is empty when no C compiler is available.
type cBaselines struct {
	dir, walk, fdreader string
	compiler            string
}

func buildCBaselines() (cBaselines, error) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			return cBaselines{}, errNoCompiler
		}
	}
	dir, err := os.MkdirTemp("", "fanobench-c")
	if err != nil {
		return cBaselines{}, err
	}
	c := cBaselines{dir: dir, compiler: compilerVersion(cc)}
	for _, name := range []string{"walk", "fdreader"} {
		src, err := cSources.ReadFile("c/" + name + ".c")
		if err != nil {
			return c, err
		}
		srcPath := filepath.Join(dir, name+".c")
		if err := os.WriteFile(srcPath, src, 0o600); err != nil {
			return c, err
		}
		bin := filepath.Join(dir, name)
		if out, err := exec.Command(cc, "-O2", "-o", bin, srcPath).CombinedOutput(); err != nil {
			return c, fmt.Errorf("%s: %v: %s", name, err, out)
		}
		switch name {
		case "walk":
			c.walk = bin
		case "fdreader":
			c.fdreader = bin
		}
	}
	return c, nil
}

func compilerVersion(cc string) string {
	out, err := exec.Command(cc, "--version").Output()
	if err != nil {
		return cc
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return first
}

// cWalk runs the C raw walk reps times in one process and returns the
// median of its own per-walk figures. Given a target, the walk reads the
// fdinfo of the fds linked to it only.
func (c cBaselines) cWalk(reps int, target ...string) (*cost, error) {
	if c.walk == "" {
		return nil, nil
	}
	cmd := exec.Command(c.walk, append([]string{fmt.Sprint(reps)}, target...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var runs []cost
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var cpu, wall, bytes int64
		if _, err := fmt.Sscan(sc.Text(), &cpu, &wall, &bytes); err != nil {
			cmd.Wait()
			return nil, fmt.Errorf("the C walk said %q: %w", sc.Text(), err)
		}
		if bytes <= 0 {
			cmd.Wait()
			return nil, errors.New("the C walk read nothing")
		}
		runs = append(runs, cost{CPU: time.Duration(cpu), Wall: time.Duration(wall)})
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("the C walk: %w", err)
	}
	m := median(runs)
	return &m, nil
}
