package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// firstUID is the first of the uids the holders run as; holdersPerUID
// keeps each uid below the default 128 fanotify groups and 128 inotify
// instances, which are charged per uid.
const (
	firstUID      = 61000
	holdersPerUID = 100
)

// busyHost is a set of `sleep` processes, each holding one inotify
// instance and one fanotify group of its own, created for its uid.
type busyHost struct {
	files    string // tmpfs holding the watched files
	holders  []*exec.Cmd
	nextFile int
}

func newBusyHost() (*busyHost, error) {
	dir, err := mountTmpfs("fanobench-files")
	if err != nil {
		return nil, err
	}
	return &busyHost{files: dir}, nil
}

// add starts n more holders, each with an inotify instance of watches
// watches and (when marks > 0) a fanotify group of marks inode marks, on
// files of its own.
func (h *busyHost) add(ctx context.Context, n, watches, marks int) error {
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		idx := len(h.holders)
		uid := firstUID + idx/holdersPerUID
		paths, err := h.newFiles(watches + marks)
		if err != nil {
			return err
		}
		fds, err := asUID(uid, func() ([]int, error) { return notifyObjects(paths[:watches], paths[watches:]) })
		if err != nil {
			return fmt.Errorf("holder %d (uid %d): %w", i, uid, err)
		}
		cmd, err := holdFDs(uid, fds)
		if err != nil {
			return err
		}
		h.holders = append(h.holders, cmd)
	}
	return nil
}

// newFiles creates n empty files readable by the holders' uids.
func (h *busyHost) newFiles(n int) ([]string, error) {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = filepath.Join(h.files, strconv.Itoa(h.nextFile))
		h.nextFile++
		fd, err := unix.Open(paths[i], unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, err
		}
		unix.Close(fd)
	}
	return paths, nil
}

// notifyObjects creates an inotify instance watching watchPaths and, when
// markPaths is not empty, a fanotify group with an inode mark on each.
func notifyObjects(watchPaths, markPaths []string) ([]int, error) {
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	fds := []int{in}
	for _, p := range watchPaths {
		if _, err := unix.InotifyAddWatch(in, p, unix.IN_MODIFY|unix.IN_CLOSE_WRITE); err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("inotify_add_watch: %w", err)
		}
	}
	if len(markPaths) == 0 {
		return fds, nil
	}
	// Without CAP_SYS_ADMIN (dropped with the euid) a group needs file
	// handles and takes inode marks only.
	fan, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_REPORT_FID, unix.O_RDONLY)
	if err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("fanotify_init: %w", err)
	}
	fds = append(fds, fan)
	for _, p := range markPaths {
		if err := unix.FanotifyMark(fan, unix.FAN_MARK_ADD, unix.FAN_MODIFY|unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, p); err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("fanotify_mark: %w", err)
		}
	}
	return fds, nil
}

// asUID runs f on a thread whose effective uid is uid, so that the kernel
// charges what f creates to uid. setresuid is made as a raw system call:
// Go's wrappers change every thread of the process. The thread goes back to
// the scheduler only once its euid is 0 again; otherwise it ends with the
// goroutine. Threads must not end needlessly: a holder's Pdeathsig fires
// when the thread that forked it exits.
func asUID(uid int, f func() ([]int, error)) ([]int, error) {
	type result struct {
		fds []int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if errno := setEUID(uid); errno != 0 {
			done <- result{err: fmt.Errorf("setresuid %d: %w", uid, errno)}
			return
		}
		fds, err := f()
		if setEUID(0) == 0 {
			runtime.UnlockOSThread()
		}
		done <- result{fds, err}
	}()
	r := <-done
	return r.fds, r.err
}

// setEUID sets this thread's effective uid, keeping the real and saved
// uids (0), so that it can switch back.
func setEUID(uid int) syscall.Errno {
	_, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0))
	return errno
}

// holdFDs starts a `sleep` running as uid that holds fds as its fds 3, 4,
// ..., then closes this process's copies.
func holdFDs(uid int, fds []int) (*exec.Cmd, error) {
	cmd := exec.Command("sleep", "1000000")
	for _, fd := range fds {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(fd), "notify"))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)},
		Pdeathsig:  syscall.SIGKILL, // never outlive the benchmark
	}
	err := cmd.Start()
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("starting a holder: %w", err)
	}
	return cmd, nil
}

// stop kills every holder and removes the files.
func (h *busyHost) stop() {
	for _, c := range h.holders {
		c.Process.Kill()
		c.Wait()
	}
	h.holders = nil
	unmountTmpfs(h.files)
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// mountTmpfs mounts a fresh tmpfs on a new directory under /tmp.
func mountTmpfs(prefix string) (string, error) {
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		return "", err
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
		os.Remove(dir)
		return "", fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return dir, nil
}

func unmountTmpfs(dir string) {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		fmt.Fprintf(os.Stderr, "bench: unmount %s: %v\n", dir, err)
	}
	os.Remove(dir)
}

// mountNamespace is a private mount namespace, held by a `sleep`, in which
// bind mounts are added on request. The goroutine that made it keeps the
// only thread in that namespace, so every mount call runs there.
type mountNamespace struct {
	dir      string   // the tmpfs mount point (an empty directory outside)
	requests chan int // how many bind mounts to add; closed to tear down
	replies  chan error
	mounts   int
	Pid      int
}

func newMountNamespace() (*mountNamespace, error) {
	dir, err := os.MkdirTemp("/tmp", "fanobench-mnt")
	if err != nil {
		return nil, err
	}
	ns := &mountNamespace{dir: dir, requests: make(chan int), replies: make(chan error)}
	go ns.serve(dir)
	if err := <-ns.replies; err != nil {
		os.Remove(dir)
		return nil, err
	}
	return ns, nil
}

// serve runs on a locked thread that unshares its mount namespace: the
// tmpfs and bind mounts it makes exist only there.
func (ns *mountNamespace) serve(dir string) {
	runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
	var holder *exec.Cmd
	err := func() error {
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return fmt.Errorf("unshare(CLONE_NEWNS): %w", err)
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("making / private: %w", err)
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
			return err
		}
		if err := os.Mkdir(filepath.Join(dir, "src"), 0o755); err != nil {
			return err
		}
		// The holder is forked from this thread, so it is in the namespace.
		holder = exec.Command("sleep", "1000000")
		holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := holder.Start(); err != nil {
			return err
		}
		ns.Pid = holder.Process.Pid
		return nil
	}()
	ns.replies <- err
	if err != nil {
		return
	}
	for n := range ns.requests {
		ns.replies <- ns.bind(dir, n)
	}
	holder.Process.Kill()
	holder.Wait()
	ns.replies <- nil
}

func (ns *mountNamespace) bind(dir string, n int) error {
	for range n {
		target := filepath.Join(dir, strconv.Itoa(ns.mounts))
		if err := os.Mkdir(target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(filepath.Join(dir, "src"), target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %d: %w", ns.mounts, err)
		}
		ns.mounts++
	}
	return nil
}

// grow adds bind mounts until the namespace has total of them, a thousand
// at a time between looks at ctx.
func (ns *mountNamespace) grow(ctx context.Context, total int) error {
	for ns.mounts < total {
		if err := ctx.Err(); err != nil {
			return err
		}
		ns.requests <- min(1000, total-ns.mounts)
		if err := <-ns.replies; err != nil {
			return err
		}
	}
	return nil
}

// stop ends the namespace: its holder and its thread exit, which frees
// every mount in it.
func (ns *mountNamespace) stop() {
	close(ns.requests)
	<-ns.replies
	os.Remove(ns.dir)
}
