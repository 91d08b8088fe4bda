package tables

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeProc writes a proc tree in which each pid has a mount namespace link
// and a mountinfo text.
func fakeProc(t *testing.T, pids map[string]struct{ mntNS, mountinfo string }) string {
	t.Helper()
	root := t.TempDir()
	for pid, p := range pids {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("mnt:["+p.mntNS+"]", filepath.Join(dir, "ns", "mnt")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "mountinfo"), []byte(p.mountinfo), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// A namespace whose mount table does not parse is left out with a warning;
// the other namespaces still answer.
func TestMountPointsSkipsUnreadableNamespace(t *testing.T) {
	root := fakeProc(t, map[string]struct{ mntNS, mountinfo string }{
		"10": {"111", "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n"},
		"20": {"222", "this is not mountinfo\n"},
		"30": {"333", "1 0 8:2 / / rw - xfs /dev/sdb1 rw\n"},
	})
	var logged strings.Builder
	env := testEnv(root)
	env.Log = slog.New(slog.NewTextHandler(&logged, nil))
	q := NewQueryContext(nil, []string{"mnt_ns", "path", "source"})
	tbl := mountPoints(env)
	generated, err := tbl.Generate(context.Background(), q)
	if err != nil {
		t.Fatalf("one bad namespace failed the query: %v", err)
	}
	rows := tbl.Named(slices.Values(generated), q)
	var got []string
	for _, r := range rows {
		got = append(got, r["mnt_ns"]+" "+r["source"])
	}
	if want := []string{"111 /dev/sda1", "333 /dev/sdb1"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("rows %q, want %q", got, want)
	}
	if want := "level=WARN msg=\"mount_points: skipping a mount namespace whose mount table cannot be read\" mnt_ns=222 pid=20"; !strings.Contains(logged.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logged.String())
	}
}
