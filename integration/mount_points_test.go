package integration_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
)

// hostileNamespace is a private mount namespace, held by a sleeping child,
// with a tmpfs on dir and bind mounts whose names mountinfo escapes.
type hostileNamespace struct {
	pid    int
	mntNS  string
	dir    string
	source string
	names  []string
}

func newHostileNamespace(t *testing.T) hostileNamespace {
	t.Helper()
	ns := hostileNamespace{
		dir:    t.TempDir(),
		source: `src with space\and backslash`,
		names:  []string{"with space", "with\ttab", "with\nnewline", "bad\xffbyte"},
	}
	ns.pid = fanotifytest.PrivateMountNamespace(t)
	const script = `set -e
src=$1 dir=$2; shift 2
mount -t tmpfs -o size=1m "$src" "$dir"
mkdir "$dir/src"
for name; do mkdir "$dir/$name"; mount --bind "$dir/src" "$dir/$name"; done`
	args := append([]string{"-t", strconv.Itoa(ns.pid), "-m", "--", "sh", "-c", script, "sh", ns.source, ns.dir}, ns.names...)
	if out, err := exec.Command("nsenter", args...).CombinedOutput(); err != nil {
		t.Fatalf("populating the namespace: %v: %s", err, out)
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", ns.pid))
	if err != nil {
		t.Fatal(err)
	}
	ns.mntNS = strings.TrimSuffix(strings.TrimPrefix(link, "mnt:["), "]")
	return ns
}

// wantRows are the rows the namespace must show under dir, by path, with
// the columns the test controls.
func (ns hostileNamespace) wantRows(t *testing.T) map[string]map[string]string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root%s", ns.pid, ns.dir), &st); err != nil {
		t.Fatal(err)
	}
	row := func(root string) map[string]string {
		return map[string]string{
			"mnt_ns": ns.mntNS, "pid": strconv.Itoa(ns.pid), "root": root, "fs_type": "tmpfs",
			"source": ns.source, "propagation": "private",
			"device": fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev)),
		}
	}
	want := map[string]map[string]string{ns.dir: row("/")}
	// Bytes that are not UTF-8 arrive as \xNN text.
	displayed := map[string]string{"bad\xffbyte": `bad\xffbyte`}
	for _, name := range ns.names {
		if d, ok := displayed[name]; ok {
			name = d
		}
		want[filepath.Join(ns.dir, name)] = row("/src")
	}
	return want
}

// equalsContext is osqueryd's context JSON for `col = value`.
func equalsContext(t *testing.T, col, value string) string {
	t.Helper()
	data, err := json.Marshal(map[string]any{
		"constraints": []map[string]any{{
			"name": col, "affinity": "BIGINT",
			"list": []map[string]any{{"op": 2, "expr": value}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestMountPointsOverThrift(t *testing.T) {
	ns := newHostileNamespace(t)
	want := ns.wantRows(t)
	m, _, _ := launch(t, false)

	for _, constraint := range []struct{ col, value string }{
		{"mnt_ns", ns.mntNS},
		{"pid", strconv.Itoa(ns.pid)},
	} {
		t.Run(constraint.col, func(t *testing.T) {
			rows, err := m.Generate("mount_points", equalsContext(t, constraint.col, constraint.value))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]map[string]string{}
			for _, r := range rows {
				if r["mnt_ns"] != ns.mntNS {
					t.Fatalf("row of namespace %s, want only %s: %v", r["mnt_ns"], ns.mntNS, r)
				}
				if r["path"] == ns.dir || strings.HasPrefix(r["path"], ns.dir+"/") {
					got[r["path"]] = r
				}
			}
			if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
				t.Fatalf("paths:\n got %q\nwant %q", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
			}
			for path, w := range want {
				for col, v := range w {
					if got[path][col] != v {
						t.Errorf("%q: %s = %q, want %q", path, col, got[path][col], v)
					}
				}
			}
		})
	}
}
