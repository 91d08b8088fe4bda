package integration_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
)

// nobody is the unprivileged uid the tests run the binary as.
const nobody = 65534

// privilegeMode is a way to run fanotify.ext without host privileges.
type privilegeMode struct {
	name string
	// uid is the host uid the binary runs as, and owns what it creates.
	uid uint32
	// seesSameUser is set when processes of the same host uid outside the
	// binary's user namespace are readable.
	seesSameUser bool
	// command wraps bin and its arguments.
	command func(t *testing.T, bin string, args ...string) *exec.Cmd
}

var privilegeModes = []privilegeMode{
	{"uid 65534", nobody, true, func(_ *testing.T, bin string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		return cmd
	}},
	// unshare -U -r as uid 65534: root of a user namespace that user owns,
	// as in a rootless container.
	{"user namespace of uid 65534", nobody, false, func(t *testing.T, bin string, args ...string) *exec.Cmd {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skip("setpriv is not installed")
		}
		argv := append([]string{"--reuid", strconv.Itoa(nobody), "--regid", strconv.Itoa(nobody), "--clear-groups", "unshare", "-U", "-r", bin}, args...)
		return exec.Command(setpriv, argv...)
	}},
	// unshare -U -r as root: uid 0 still, but no capability in the initial
	// user namespace.
	{"user namespace of root", 0, false, func(_ *testing.T, bin string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		}
		return cmd
	}},
}

// sharedBinary copies the built binary where every user may run it (the
// build directory is private to root).
func sharedBinary(t *testing.T) string {
	t.Helper()
	dir := sharedDir(t, 0) // root's, readable by all
	src, err := os.Open(standin.BuildBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	bin := filepath.Join(dir, "fanotify.ext")
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// sharedDir is a directory owned by uid, where files are visible to all.
func sharedDir(t *testing.T, uid uint32) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "unpriv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(uid), int(uid)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runJSON runs `query --json SQL` in mode and decodes the rows; anything but
// exit 0 with clean stderr fails the test.
func (mode privilegeMode) runJSON(t *testing.T, bin, config, sql string, extra ...string) []map[string]string {
	t.Helper()
	args := append([]string{"query", "--json", "--config", config}, extra...)
	cmd := mode.command(t, bin, append(args, sql)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s", sql, err, errOut.String())
	}
	for _, bad := range []string{"panic", "goroutine ", "Error", "level=ERROR"} {
		if strings.Contains(errOut.String(), bad) {
			t.Errorf("%s: stderr holds %q:\n%s", sql, bad, errOut.String())
		}
	}
	var rows []map[string]string
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("%s: %v in %q", sql, err, out.String())
	}
	return rows
}

// Without host privileges every table answers what it can see: the limits,
// the fds of processes of the same user, the mounts of its own namespace;
// what it cannot see makes the risk unknown, never an error.
func TestWithoutPrivileges(t *testing.T) {
	bin := sharedBinary(t)
	for _, mode := range privilegeModes {
		t.Run(mode.name, func(t *testing.T) {
			dir := sharedDir(t, mode.uid)
			in := fanotifytest.Inotify(t, dir)
			fan := fanotifytest.Fanotify(t, 0)
			holder := fanotifytest.Hold(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: mode.uid, Gid: mode.uid}}, in, fan)
			fanotifytest.Close(in, fan)
			pid := strconv.Itoa(holder)

			// One query, one process start: every column of every table,
			// then what the mode must see.
			var parts []string
			for _, tbl := range productTables(t) {
				var cols []string
				for _, c := range tbl.Columns {
					cols = append(cols, "coalesce("+c.Name+", '')")
				}
				parts = append(parts, fmt.Sprintf("(SELECT COUNT(*) FROM %s WHERE length(%s) >= 0) AS %s", tbl.Name, strings.Join(cols, " || "), tbl.Name))
			}
			self := mntNS(t, os.Getpid())
			parts = append(parts,
				"(SELECT COUNT(*) FROM mount_points WHERE mnt_ns = "+self+" AND path = '/') AS own_root",
				"(SELECT COUNT(*) FROM inotify_instances WHERE pid = "+pid+") AS held_instances",
				"(SELECT COUNT(*) FROM fanotify_groups WHERE pid = "+pid+") AS held_groups",
				"(SELECT COUNT(*) FROM fanotify_limits WHERE scope = 'user') AS user_limits",
				"(SELECT COUNT(*) FROM fanotify_limits WHERE scope = 'user' AND risk = 'unknown' AND risk_reason = 'no_access' AND scan_complete = 0) AS unknown_limits")
			rows := mode.runJSON(t, bin, defaultsConfig(t), "SELECT "+strings.Join(parts, ", "))
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1", len(rows))
			}
			got := rows[0]
			if got["mount_points"] == "0" || got["fanotify_limits"] == "0" || got["fanotify_features"] == "0" {
				t.Errorf("tables that need no privilege are empty: %v", got)
			}
			if got["own_root"] != "1" {
				t.Errorf("mount_points of its own namespace %s: %s root mounts, want 1", self, got["own_root"])
			}
			// A user namespace cannot read processes outside it, even of
			// the same host uid (no CAP_SYS_PTRACE over their namespace).
			if mode.seesSameUser && (got["held_instances"] != "1" || got["held_groups"] != "1") {
				t.Errorf("%s inotify instances and %s fanotify groups of pid %s of the same user, want 1 each", got["held_instances"], got["held_groups"], pid)
			}
			// Processes of other users, or of the same uid outside its
			// user namespace (their fds list, but do not read), cannot be
			// inspected: no rating can be ok.
			if got["user_limits"] == "0" || got["unknown_limits"] != got["user_limits"] {
				t.Errorf("%s of %s per-user limits rated unknown (no_access, scan incomplete), want all", got["unknown_limits"], got["user_limits"])
			}
		})
	}
}

// Without host privileges the collector falls back to inode marks and still
// records events under its path (handles do not open without
// CAP_DAC_READ_SEARCH), and its own group shows in fanotify_groups.
func TestCollectorWithoutPrivileges(t *testing.T) {
	bin := sharedBinary(t)
	for _, mode := range privilegeModes {
		t.Run(mode.name, func(t *testing.T) {
			dir := sharedDir(t, mode.uid)
			// A watched file outside dir: its events carry a directory
			// handle that cannot be opened, then the file's own.
			file := filepath.Join(sharedDir(t, mode.uid), "watched")
			if err := os.WriteFile(file, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			config := filepath.Join(dir, "fanotify.json")
			if err := os.WriteFile(config, []byte(`{"collector": {"paths": [`+strconv.Quote(dir)+`, `+strconv.Quote(file)+`]}}`), 0o644); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			wrote := make(chan struct{})
			go func() {
				defer close(wrote)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(50 * time.Millisecond):
					}
					os.WriteFile(filepath.Join(dir, "file"+strconv.Itoa(i)), []byte("x"), 0o644)
					os.WriteFile(file, []byte("x"), 0o644)
				}
			}()
			sql := "SELECT (SELECT group_concat(strategy) FROM fanotify_collector) AS strategy, " +
				"(SELECT COUNT(*) FROM fanotify_events WHERE path = '" + dir + "/file3') AS events, " +
				"(SELECT COUNT(*) FROM fanotify_events WHERE path = '" + file + "') AS file_events, " +
				"(SELECT COUNT(*) FROM fanotify_groups WHERE process = 'fanotify.ext') AS own_groups"
			rows := mode.runJSON(t, bin, config, sql, "--watch", "2s")
			close(stop)
			<-wrote
			if len(rows) != 1 || rows[0]["strategy"] != "inode,inode" {
				t.Fatalf("collector %v: want two watches with inode marks", rows)
			}
			if rows[0]["events"] == "0" {
				t.Errorf("no event on %s/file3", dir)
			}
			if rows[0]["file_events"] == "0" {
				t.Errorf("no event on the watched file %s", file)
			}
			if rows[0]["own_groups"] == "0" {
				t.Error("fanotify_groups does not show the collector's own group")
			}
		})
	}
}
