package main

import (
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

// cWalk is an item running the C raw walk once, as a process of its own,
// whose cost is the walk's own figure; false when there is no C compiler.
// Given a target, the walk reads the fdinfo of the fds linked to it only.
func (c cBaselines) cWalk(target ...string) (item, bool) {
	if c.walk == "" {
		return item{}, false
	}
	return item{name: "c_walk", self: func() (cost, error) {
		out, err := exec.Command(c.walk, append([]string{"1"}, target...)...).Output()
		if err != nil {
			return cost{}, fmt.Errorf("the C walk: %w", err)
		}
		var cpu, wall, bytes int64
		if _, err := fmt.Sscan(string(out), &cpu, &wall, &bytes); err != nil {
			return cost{}, fmt.Errorf("the C walk said %q: %w", out, err)
		}
		if bytes <= 0 {
			return cost{}, errors.New("the C walk read nothing")
		}
		return cost{CPU: time.Duration(cpu), Wall: time.Duration(wall)}, nil
	}}, true
}

// withC adds the C walk to items when there is one, and returns the items
// and a function that picks the C walk's cost out of their measures (nil
// without it).
func (c cBaselines) withC(items []item, target ...string) ([]item, func([]cost) *cost) {
	it, ok := c.cWalk(target...)
	if !ok {
		return items, func([]cost) *cost { return nil }
	}
	i := len(items)
	return append(items, it), func(m []cost) *cost { return &m[i] }
}
