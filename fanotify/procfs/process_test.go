package procfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
)

func processFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "process", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fixtureProc is a proc tree: 7 and 12 are processes, 30 exited.
const fixtureProc = "testdata/process/proc"

func TestParseStatus(t *testing.T) {
	st, err := ParseStatus(processFixture(t, "status"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Status{UID: 1000, EUID: 1001}); st != want {
		t.Errorf("ParseStatus = %+v, want %+v", st, want)
	}
}

func TestParseStatusErrors(t *testing.T) {
	for name, data := range map[string][]byte{
		"no Uid line": processFixture(t, "status_no_uid"),
		"one uid":     []byte("Name:\tx\nUid:\t0\n"),
		"not numeric": []byte("Uid:\t0\tx\t0\t0\n"),
		"too large":   []byte("Uid:\t0\t4294967296\t0\t0\n"),
		"empty":       nil,
	} {
		if _, err := ParseStatus(data); err == nil {
			t.Errorf("%s: ParseStatus succeeded", name)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"cgroup_v2", "/system.slice/docker-4f1c2e.scope"},
		{"cgroup_v1", "/docker/4f1c2e"},
		// v2 hierarchy unused ("0::/"): the first v1 path below the root.
		{"cgroup_hybrid", "/process_api/d90d6c939f3abc1a90f55c9cf344aac1"},
		{"cgroup_colon", "/user.slice/a:b"},
	} {
		if got := ParseCgroup(processFixture(t, tc.file)); got != tc.want {
			t.Errorf("%s: ParseCgroup = %q, want %q", tc.file, got, tc.want)
		}
	}
	if got := ParseCgroup([]byte("0::/\n1:cpu:/\n")); got != "/" {
		t.Errorf("root everywhere: ParseCgroup = %q, want /", got)
	}
	if got := ParseCgroup(nil); got != "" {
		t.Errorf("empty file: ParseCgroup = %q, want empty", got)
	}
}

func TestParseNamespaceLink(t *testing.T) {
	for link, want := range map[string]uint64{
		"mnt:[4026531841]":  4026531841,
		"user:[4026531837]": 4026531837,
		"pid:[1]":           1,
	} {
		got, err := ParseNamespaceLink(link)
		if err != nil || got != want {
			t.Errorf("ParseNamespaceLink(%q) = %d, %v; want %d", link, got, err, want)
		}
	}
	for _, bad := range []string{"", "mnt:[]", "mnt:[12", "mnt:12]", "mnt:[x]", "mnt:[-1]", "/proc/1/ns/mnt"} {
		if _, err := ParseNamespaceLink(bad); err == nil {
			t.Errorf("ParseNamespaceLink(%q) succeeded", bad)
		}
	}
}

func TestPidsFixture(t *testing.T) {
	pids, err := NewFS(fixtureProc).Pids()
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{7, 12, 30}; !slices.Equal(pids, want) {
		t.Errorf("Pids = %v, want %v (numeric entries only, ascending)", pids, want)
	}
}

func TestIdentityFixture(t *testing.T) {
	fsys := NewFS(fixtureProc)
	// The euid is the owner of the process's directory: here, whoever
	// checked the fixtures out.
	euid := uint32(os.Geteuid())
	for _, want := range []Identity{
		{PID: 7, Comm: "sshd", EUID: euid, UserNS: 4026531837, MntNS: 4026531841, Cgroup: "/system.slice/docker-4f1c2e.scope"},
		// A name cut inside a UTF-8 sequence is shown byte by byte.
		{PID: 12, Comm: `ab\xe2\x82`, EUID: euid, UserNS: 4026531837, MntNS: 4026532001, Cgroup: "/process_api/d90d6c939f3abc1a90f55c9cf344aac1"},
	} {
		got, err := readIdentity(fsys, want.PID)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Identity(%d) = %+v, want %+v", want.PID, got, want)
		}
	}
}

func TestIdentityGone(t *testing.T) {
	fsys := NewFS(fixtureProc)
	// 30 has no namespace links, like a zombie; 99 does not exist.
	for _, pid := range []int{30, 99} {
		if _, err := readIdentity(fsys, pid); !errors.Is(err, ErrProcessGone) {
			t.Errorf("Identity(%d) error = %v, want ErrProcessGone", pid, err)
		}
	}
}

func TestNamespaceInodeUnknownKind(t *testing.T) {
	_, err := NewFS(fixtureProc).NamespaceInode(7, "bogus")
	if err == nil || errors.Is(err, ErrProcessGone) {
		t.Errorf("NamespaceInode(bogus) error = %v, want an error that is not ErrProcessGone", err)
	}
}

// startSleep starts a child process that lives until the test ends.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func linkInode(t *testing.T, path string) uint64 {
	t.Helper()
	link, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	ino, err := ParseNamespaceLink(link)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func TestIdentityLive(t *testing.T) {
	fsys := NewFS(DefaultRoot)
	cmd := startSleep(t)
	pid := cmd.Process.Pid

	// Until exec completes the child is still named after the test binary.
	var id Identity
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if id, err = readIdentity(fsys, pid); err != nil {
			t.Fatal(err)
		}
		if id.Comm == "sleep" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cgroup, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{
		PID:    pid,
		Comm:   "sleep",
		EUID:   uint32(os.Geteuid()),
		UserNS: linkInode(t, "/proc/self/ns/user"),
		MntNS:  linkInode(t, "/proc/self/ns/mnt"),
		Cgroup: ParseCgroup(cgroup), // the child inherits our cgroup
	}
	if id != want {
		t.Errorf("Identity(%d) = %+v, want %+v", pid, id, want)
	}

	pids, err := fsys.Pids()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{os.Getpid(), pid} {
		if _, found := slices.BinarySearch(pids, p); !found {
			t.Errorf("Pids lacks %d", p)
		}
	}
}

// A process that executed a file it may not read is not dumpable: the
// files of its /proc directory then belong to root, the directory itself
// still to its effective uid, which Identity reads.
func TestIdentityNonDumpable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running a process as another uid takes root")
	}
	const nobody = 65534
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "nondumpable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "sleep")
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o711); err != nil { // execute only, for nobody
		t.Fatal(err)
	}
	pid := fanotifytest.HoldCommand(t, exec.Command(bin, "600"),
		&syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}})
	fanotifytest.WaitExec(t, pid, "sleep")
	fsys := NewFS(DefaultRoot)
	id, err := readIdentity(fsys, pid)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(fsys.Path(strconv.Itoa(pid), "status"), &st); err != nil || st.Uid != 0 {
		t.Fatalf("status owned by uid %d (%v): the process is dumpable, the test proves nothing", st.Uid, err)
	}
	if id.EUID != nobody {
		t.Errorf("EUID %d, want %d", id.EUID, nobody)
	}
}

func TestNamespaceInodeLive(t *testing.T) {
	fsys := NewFS(DefaultRoot)
	for _, kind := range namespaceKinds {
		path := "/proc/self/ns/" + kind
		if _, err := os.Lstat(path); err != nil {
			continue // namespace kind not built into this kernel
		}
		got, err := fsys.NamespaceInode(os.Getpid(), kind)
		if err != nil {
			t.Fatal(err)
		}
		if want := linkInode(t, path); got != want {
			t.Errorf("NamespaceInode(self, %s) = %d, want %d", kind, got, want)
		}
	}
}

// How a proc numbers this process and whose processes it lists, from the
// initial pid namespace (the host's proc), from a child pid namespace that
// kept the host's proc, and from one that mounted its own. In each, the
// last NSpid of SelfPID's status is os.Getpid(); a tree without self is an
// error.
func TestPidNamespaceViews(t *testing.T) {
	fsys := NewFS(DefaultRoot)
	self, err := fsys.SelfPID()
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", self))
	if err != nil {
		t.Fatal(err)
	}
	nspid, err := ParseNSpid(status)
	if err != nil || len(nspid) == 0 || nspid[len(nspid)-1] != os.Getpid() {
		t.Fatalf("SelfPID %d, whose NSpid is %v (%v): not this process (pid %d here)", self, nspid, err, os.Getpid())
	}
	view := os.Getenv("PIDNS_TEST_VIEW")
	want := map[string]struct{ ownNumbers, own, every bool }{
		"":                                 {true, true, true},
		"child namespace, the host's proc": {false, false, true},
		"child namespace, its own proc":    {true, true, false},
	}[view]
	got := struct{ ownNumbers, own, every bool }{self == os.Getpid(), fsys.InOwnPidNamespace(), fsys.ListsEveryProcess()}
	if got != want {
		t.Errorf("%q: SelfPID is os.Getpid(), InOwnPidNamespace, ListsEveryProcess: %+v, want %+v", view, got, want)
	}
	if fanotifytest.IsChild(t) {
		return
	}
	for view, unshare := range map[string][]string{
		"child namespace, the host's proc": {"--pid", "--fork"},
		"child namespace, its own proc":    {"--mount", "--pid", "--fork", "--mount-proc"},
	} {
		cmd := fanotifytest.ChildCommand(t, nil, append([]string{"unshare"}, unshare...)...)
		cmd.Env = append(cmd.Env, "PIDNS_TEST_VIEW="+view)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", view, err, out)
		}
	}
	if _, err := NewFS(t.TempDir()).SelfPID(); err == nil {
		t.Error("SelfPID of a tree without self: no error")
	}
}

func TestParseStatFlags(t *testing.T) {
	for name, want := range map[string]uint32{"stat_kthreadd": 0x208040, "stat_odd_comm": 0x400000} {
		got, err := ParseStatFlags(processFixture(t, name))
		if err != nil || got != want {
			t.Errorf("%s: ParseStatFlags = %#x, %v; want %#x", name, got, err, want)
		}
	}
	for _, bad := range []string{"", "2 kthreadd S 0 0 0 0 -1 2129984", "2 (kthreadd) S 0 0 0 0 -1", "2 (kthreadd) S 0 0 0 0 -1 x 0"} {
		if got, err := ParseStatFlags([]byte(bad)); err == nil {
			t.Errorf("ParseStatFlags(%q) = %#x, no error", bad, got)
		}
	}
}

func TestParseNSpid(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want []int
	}{
		{"fixture", processFixture(t, "status"), []int{10914}},
		{"child pid namespace", processFixture(t, "status_child_pidns"), []int{4021, 7}},
		{"before Linux 4.1", []byte("Name:\tx\nPid:\t7\nUid:\t0\t0\t0\t0\n"), nil},
	} {
		got, err := ParseNSpid(tc.data)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: ParseNSpid = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	for _, bad := range []string{"NSpid:\n", "NSpid:\t12\tx\n", "NSpid:\t0\n", "NSpid:\t-3\n"} {
		if got, err := ParseNSpid([]byte(bad)); err == nil {
			t.Errorf("ParseNSpid(%q) = %v, no error", bad, got)
		}
	}
}

// OtherThreads lists a process's threads but the process itself (a Go
// test process runs several), none for a single-threaded process, and
// ErrProcessGone for one reaped.
func TestOtherThreads(t *testing.T) {
	fsys := NewFS(DefaultRoot)
	self := os.Getpid()
	before := threadsOfSelf(t)
	got, err := fsys.OtherThreads(self)
	after := threadsOfSelf(t)
	if err != nil || len(got) == 0 || slices.Contains(got, self) {
		t.Errorf("OtherThreads(self) = %v, %v; want the threads but %d", got, err, self)
	}
	for _, tid := range got {
		if !slices.Contains(before, tid) && !slices.Contains(after, tid) {
			t.Errorf("OtherThreads(self) lists %d, not a thread of this process", tid)
		}
	}
	for _, tid := range before {
		if tid != self && slices.Contains(after, tid) && !slices.Contains(got, tid) {
			t.Errorf("OtherThreads(self) = %v misses thread %d", got, tid)
		}
	}
	if got, err := fsys.OtherThreads(fanotifytest.Hold(t, nil)); len(got) != 0 || err != nil {
		t.Errorf("OtherThreads(sleep) = %v, %v; want none", got, err)
	}
	reaped := exec.Command("true")
	if err := reaped.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.OtherThreads(reaped.Process.Pid); !errors.Is(err, ErrProcessGone) {
		t.Errorf("OtherThreads(reaped) error = %v, want ErrProcessGone", err)
	}
}

// threadsOfSelf lists /proc/self/task with os.ReadDir.
func threadsOfSelf(t *testing.T) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		tids = append(tids, tid)
	}
	return tids
}

// TestIdentityExited covers both ways a process disappears under a walk:
// as a zombie (files readable, namespaces gone) and once reaped.
func TestIdentityExited(t *testing.T) {
	fsys := NewFS(DefaultRoot)
	checkGoneOnExit(t, "Identity", func(pid int) error {
		_, err := readIdentity(fsys, pid)
		return err
	})
}

// checkGoneOnExit checks that read fails with ErrProcessGone for a child
// that has exited, both as a zombie and once reaped.
func checkGoneOnExit(t *testing.T, name string, read func(pid int) error) {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	fanotifytest.WaitZombie(t, pid)
	if err := read(pid); !errors.Is(err, ErrProcessGone) {
		t.Errorf("zombie: %s error = %v, want ErrProcessGone", name, err)
	}
	cmd.Wait()
	if err := read(pid); !errors.Is(err, ErrProcessGone) {
		t.Errorf("reaped: %s error = %v, want ErrProcessGone", name, err)
	}
}

// Arbitrary bytes give a value or an error, never a panic.
func FuzzParseProcessFiles(f *testing.F) {
	for _, name := range []string{"status", "cgroup_hybrid", "cgroup_v1"} {
		data, err := os.ReadFile(filepath.Join("testdata", "process", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("mnt:[4026531841]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseStatus(data)
		ParseNSpid(data)
		ParseStatFlags(data)
		ParseCgroup(data)
		ParseNamespaceLink(string(data))
	})
}

// readIdentity reads every part of pid's identity, as a snapshot's
// ReadOwners and ReadDetails do.
func readIdentity(fsys FS, pid int) (Identity, error) {
	id := Identity{PID: pid}
	if err := fsys.ReadOwner(&id); err != nil {
		return Identity{}, err
	}
	if err := fsys.ReadDetails(&id); err != nil {
		return Identity{}, err
	}
	return id, nil
}
