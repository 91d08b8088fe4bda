// Package fanotifytest gives tests processes that hold fanotify groups and
// inotify instances, so that counts read back through /proc can be checked
// against known numbers. Tests using it create kernel objects: never run
// them in parallel.
package fanotifytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Hold starts a `sleep` that holds fds as its fds 3, 4, ... in order (the
// same fd twice gives it two fds of one open file) and returns its pid. The
// process is killed at cleanup. attr may set namespaces or credentials.
func Hold(t testing.TB, attr *syscall.SysProcAttr, fds ...int) int {
	t.Helper()
	return HoldCommand(t, exec.Command("sleep", "1000"), attr, fds...)
}

// HoldCommand is Hold for a command of the caller's choice (such as
// `unshare -U sleep 1000` for a nested user namespace).
func HoldCommand(t testing.TB, cmd *exec.Cmd, attr *syscall.SysProcAttr, fds ...int) int {
	t.Helper()
	for _, fd := range fds {
		// A copy: the os.File closes it, never the caller's fd.
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(dup), "notify")
		defer f.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// HoldInNestedUserNS starts a `sleep` holding an inotify instance (watching
// a temporary directory) in a user namespace two deep, and returns its pid
// once it runs there. Both namespaces map uid and gid 0 to 0; no process
// is left in the outer one.
func HoldInNestedUserNS(t testing.TB) int {
	t.Helper()
	in := Inotify(t, t.TempDir())
	defer Close(in)
	attr := &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	}
	pid := HoldCommand(t, exec.Command("unshare", "-U", "sleep", "1000"), attr, in)
	WaitExec(t, pid, "sleep") // unshare creates the inner namespace first
	return pid
}

// ParentUserNS returns the inode of the parent of pid's user namespace.
func ParentUserNS(t testing.TB, pid int) uint64 {
	t.Helper()
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	parent, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(parent)
	var st unix.Stat_t
	if err := unix.Fstat(parent, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Files creates n empty files in a new temporary directory.
func Files(t testing.TB, n int) []string {
	t.Helper()
	dir := t.TempDir()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(paths[i], nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// Inotify creates an inotify instance watching paths with IN_MODIFY.
func Inotify(t testing.TB, paths ...string) int {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, err := unix.InotifyAddWatch(fd, p, unix.IN_MODIFY); err != nil {
			t.Fatalf("inotify_add_watch %s: %v", p, err)
		}
	}
	return fd
}

// Fanotify creates a notification-class fanotify group with extra init
// flags.
func Fanotify(t testing.TB, flags uint) int {
	t.Helper()
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|flags, unix.O_RDONLY)
	if err != nil {
		t.Fatalf("fanotify_init %#x: %v", flags, err)
	}
	return fd
}

// Mark adds (FAN_MARK_ADD|flags) a mark with mask on path to group fd.
func Mark(t testing.TB, fd int, flags uint, mask uint64, path string) {
	t.Helper()
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|flags, mask, unix.AT_FDCWD, path); err != nil {
		t.Fatalf("fanotify_mark %#x %#x %s: %v", flags, mask, path, err)
	}
}

// Close closes the caller's copies once holders have them, so that the
// test process itself holds none of the objects it counts.
func Close(fds ...int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// PrivateMountNamespace starts `unshare -m --propagation private sleep`, so
// that nothing mounted inside reaches the host, and returns its pid once it
// runs sleep. The namespace and its mounts vanish at cleanup.
func PrivateMountNamespace(t testing.TB) int {
	t.Helper()
	pid := HoldCommand(t, exec.Command("unshare", "-m", "--propagation", "private", "sleep", "600"), nil)
	WaitExec(t, pid, "sleep")
	return pid
}

// WaitExec waits until pid runs comm: wrappers such as unshare and nsenter
// set up namespaces before they exec it.
func WaitExec(t testing.TB, pid int, comm string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if err != nil {
			t.Fatal(err)
		}
		if string(got) == comm+"\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still runs %q, not %s", pid, got, comm)
		}
	}
}

// WaitZombie waits until the unreaped child pid has exited.
func WaitZombie(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		// pid (comm) state ...: the state follows the last ')'.
		if fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); fields[0] == "Z" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("pid %d did not exit", pid)
}

// MountNamespaceThread locks a thread of this process into a private mount
// namespace of its own, with a tmpfs on dir that only it sees, and returns
// the thread's id and the namespace's inode. The thread exits at cleanup,
// taking the namespace with it: it is never unlocked.
func MountNamespaceThread(t testing.TB, dir string) (tid int, mntNS uint64) {
	t.Helper()
	type result struct {
		tid   int
		mntNS uint64
		err   error
	}
	ready, done := make(chan result), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		r := result{tid: unix.Gettid()}
		r.err = unix.Unshare(unix.CLONE_NEWNS)
		if r.err == nil {
			r.err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
		}
		if r.err == nil {
			r.err = unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m")
		}
		if r.err == nil {
			var link string
			if link, r.err = os.Readlink("/proc/" + strconv.Itoa(r.tid) + "/ns/mnt"); r.err == nil {
				_, r.err = fmt.Sscanf(link, "mnt:[%d]", &r.mntNS)
			}
		}
		ready <- r
		<-done
	}()
	r := <-ready
	t.Cleanup(func() { close(done) })
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.tid, r.mntNS
}
