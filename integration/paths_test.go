package integration_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// A path and a command name holding a byte that is not UTF-8 are written
// the same way, \xNN, by every table that shows them; valid UTF-8 around
// it passes unchanged.
func TestInvalidUTF8RendersAlikeEverywhere(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "bad\xffdir ünïcode")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Command names come from the name of the executed file.
	holderBin, writerBin := filepath.Join(base, "sl\xfeep"), filepath.Join(base, "to\xfduch")
	for link, target := range map[string]string{holderBin: "sleep", writerBin: "touch"} {
		path, err := exec.LookPath(target)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(path, link); err != nil {
			t.Fatal(err)
		}
	}

	// A holder of an inotify watch and a fanotify inode mark on dir.
	in := fanotifytest.Inotify(t, dir)
	fan := fanotifytest.Fanotify(t, unix.FAN_REPORT_FID)
	fanotifytest.Mark(t, fan, 0, unix.FAN_MODIFY, dir)
	holder := fanotifytest.HoldCommand(t, exec.Command(holderBin, "1000"), nil, in, fan)
	fanotifytest.Close(in, fan)
	fanotifytest.WaitExec(t, holder, "sl\xfeep")

	// A namespace with a tmpfs mounted on dir, named with a bad byte, and a
	// bind mount whose root holds one too.
	ns := fanotifytest.PrivateMountNamespace(t)
	const script = `set -e
mount -t tmpfs "$1" "$2"
mkdir "$2/$3"
mount --bind "$2/$3" "$2/$3"`
	if out, err := exec.Command("nsenter", "-t", strconv.Itoa(ns), "-m", "--", "sh", "-c", script, "sh", "src\xfcfs", dir, "in\xfbner").CombinedOutput(); err != nil {
		t.Fatalf("mounting: %v: %s", err, out)
	}

	config := filepath.Join(base, "fanotify.json")
	if err := os.WriteFile(config, []byte(`{"collector": {"paths": [`+strconv.Quote(base)+`]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "f\xfaile")
	stop, wrote := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(wrote)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			exec.Command(writerBin, file).Run()
		}
	}()
	pid := strconv.Itoa(holder)
	out, errOut, code := queryCommand(t, "--json", "--watch", "1500ms", "--config", config, `
		SELECT 'mount_points' AS tbl, path, root, source, '' AS process FROM mount_points WHERE mnt_ns = `+mntNS(t, ns)+`
		UNION ALL SELECT 'fanotify_marks', path, '', '', process FROM fanotify_marks WHERE pid = `+pid+`
		UNION ALL SELECT 'inotify_watches', path, '', '', process FROM inotify_watches WHERE pid = `+pid+`
		UNION ALL SELECT 'fanotify_groups', '', '', '', process FROM fanotify_groups WHERE pid = `+pid+`
		UNION ALL SELECT 'inotify_instances', '', '', '', process FROM inotify_instances WHERE pid = `+pid+`
		UNION ALL SELECT 'fanotify_events', path, '', '', process FROM fanotify_events`)
	close(stop)
	<-wrote
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rows []map[string]string
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v in %q", err, out)
	}

	want := map[string]map[string]string{
		"mount_points":      {"path": procfs.DisplayPath(dir), "source": `src\xfcfs`},
		"mount_points bind": {"path": procfs.DisplayPath(dir) + `/in\xfbner`, "root": `/in\xfbner`},
		"fanotify_marks":    {"path": procfs.DisplayPath(dir), "process": `sl\xfeep`},
		"inotify_watches":   {"path": procfs.DisplayPath(dir), "process": `sl\xfeep`},
		"fanotify_groups":   {"process": `sl\xfeep`},
		"inotify_instances": {"process": `sl\xfeep`},
		"fanotify_events":   {"path": procfs.DisplayPath(file), "process": `to\xfduch`},
	}
	if got := procfs.DisplayPath(dir); got != base+`/bad\xffdir ünïcode` {
		t.Fatalf("DisplayPath(%q) = %q", dir, got)
	}
	for name, w := range want {
		if !containsRow(rows, name, w) {
			t.Errorf("%s: no row with %q", name, w)
		}
	}
	if t.Failed() {
		t.Logf("rows: %q", rows)
	}
}

// containsRow reports whether a row of the table named by key (its first
// word) holds every value of want.
func containsRow(rows []map[string]string, key string, want map[string]string) bool {
	tbl, _, _ := strings.Cut(key, " ")
	for _, r := range rows {
		if r["tbl"] != tbl {
			continue
		}
		match := true
		for col, v := range want {
			match = match && r[col] == v
		}
		if match {
			return true
		}
	}
	return false
}
