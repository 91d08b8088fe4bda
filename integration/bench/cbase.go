package main

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed c
var cSources embed.FS

// cBaselines are the C versions of the raw walk, of the mountinfo read and
// of the fd-mode reader, compiled for this run; dir is empty when no C
// compiler is available.
type cBaselines struct {
	dir, walk, mountinfo, fdreader string
	compiler                       string
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
	sources, _ := fs.Sub(cSources, "c")
	if err := os.CopyFS(dir, sources); err != nil {
		return c, err
	}
	for _, prog := range []struct {
		name string
		bin  *string
	}{{"walk", &c.walk}, {"mountinfo", &c.mountinfo}, {"fdreader", &c.fdreader}} {
		bin := filepath.Join(dir, prog.name)
		if out, err := exec.Command(cc, "-O2", "-o", bin, bin+".c").CombinedOutput(); err != nil {
			return c, fmt.Errorf("%s: %v: %s", prog.name, err, out)
		}
		*prog.bin = bin
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
	return cRun("c_walk", c.walk, append([]string{"1"}, target...)...)
}

// cMountinfo is an item running the C mountinfo read once, as cWalk.
func (c cBaselines) cMountinfo() (item, bool) { return cRun("c_mountinfo", c.mountinfo, "1") }

// cRun is an item running the C baseline bin once with args; it prints
// "cpu_ns wall_ns bytes" of its own run. False when bin was not built.
func cRun(name, bin string, args ...string) (item, bool) {
	if bin == "" {
		return item{}, false
	}
	return item{name: name, self: func() (cost, error) {
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			return cost{}, fmt.Errorf("%s: %w", name, err)
		}
		var cpu, wall, bytes int64
		if _, err := fmt.Sscan(string(out), &cpu, &wall, &bytes); err != nil {
			return cost{}, fmt.Errorf("%s said %q: %w", name, out, err)
		}
		if bytes <= 0 {
			return cost{}, fmt.Errorf("%s read nothing", name)
		}
		return cost{CPU: time.Duration(cpu), Wall: time.Duration(wall)}, nil
	}}, true
}

// withC adds the C walk to items when there is one (see withItem).
func (c cBaselines) withC(items []item, target ...string) ([]item, func([]cost) *cost) {
	it, ok := c.cWalk(target...)
	return withItem(items, it, ok)
}

// withItem adds it to items when ok, and returns the items and a function
// that picks its cost out of their measures (nil without it).
func withItem(items []item, it item, ok bool) ([]item, func([]cost) *cost) {
	if !ok {
		return items, noCost
	}
	i := len(items)
	return append(items, it), func(m []cost) *cost { return &m[i] }
}

// noCost picks the cost of an item that did not run.
func noCost([]cost) *cost { return nil }

// sumCosts is the cost of running a and b, nil unless both ran.
func sumCosts(a, b *cost) *cost {
	if a == nil || b == nil {
		return nil
	}
	return &cost{CPU: a.CPU + b.CPU, Wall: a.Wall + b.Wall}
}
