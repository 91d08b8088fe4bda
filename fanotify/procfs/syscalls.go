package procfs

import (
	"bytes"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// syscalls is how a read of /proc enters the kernel.
//
// A walk makes about ten system calls per fd on the host, most of them a few
// microseconds long. Made as plain system calls, each tells the Go scheduler
// the thread may block, and the runtime's other threads wake around them: on
// a host of 1,000 instances a walk of /proc made 861 context switches against
// 49 with the same calls made raw, and took a sixth more CPU (239 against 199
// ms; a C walk took 185 ms).
type syscalls bool

const (
	// mayWait calls can wait on other tasks for long: mountinfo waits for
	// the namespace's lock behind a mount, cgroup for cgroup_mutex,
	// cmdline for the target's mmap lock.
	mayWait syscalls = false
	// quick calls only list processes and fds, read fd links, print
	// fdinfo and read who a process is (the owner of /proc/PID, its
	// namespace links, comm), which wait on nothing but short locks of
	// the kernel's own (a group's mark lock, a task's lock). They run
	// raw, holding the thread's processor: the Go scheduler neither sees
	// nor preempts them. The fdinfo of an fd with many marks is the
	// exception (see LongReads).
	quick syscalls = true
)

// open opens path, NUL-terminated (see cPath), for reading.
func (s syscalls) open(path []byte, flags int) (int, error) {
	fd, errno := s.call(unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&path[0])), uintptr(flags|unix.O_RDONLY|unix.O_CLOEXEC), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// stat stats path, NUL-terminated, following links.
func (s syscalls) stat(path []byte, st *unix.Stat_t) error {
	_, errno := s.call(unix.SYS_NEWFSTATAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&path[0])), uintptr(unsafe.Pointer(st)), 0)
	return errnoErr(errno)
}

func (s syscalls) read(fd int, buf []byte) (int, error) {
	n, errno := s.call(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
	return int(n), errnoErr(errno)
}

// getdents reads the entries (linux_dirent64) of an open directory into
// buf.
func (s syscalls) getdents(fd int, buf []byte) (int, error) {
	n, errno := s.call(unix.SYS_GETDENTS64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
	return int(n), errnoErr(errno)
}

// readlinkat reads the target of the link name, NUL-terminated, relative
// to the open directory dir (atFDCWD for a path), into buf.
func (s syscalls) readlinkat(dir int, name, buf []byte) (int, error) {
	n, errno := s.call(unix.SYS_READLINKAT, uintptr(dir), uintptr(unsafe.Pointer(&name[0])), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	return int(n), errnoErr(errno)
}

// close closes fd; a failed close of a /proc file leaves the reader
// nothing to act on.
func (s syscalls) close(fd int) {
	s.call(unix.SYS_CLOSE, uintptr(fd), 0, 0, 0)
}

// call makes system call trap. Memory whose address an argument carries
// stays where it is and alive until the call returns: uintptrescapes moves
// it to the heap and keeps it, and a call that is not inlined is the span
// it keeps it for.
//
//go:uintptrescapes
//go:noinline
func (s syscalls) call(trap, a1, a2, a3, a4 uintptr) (uintptr, unix.Errno) {
	if s == quick {
		r, _, errno := unix.RawSyscall6(trap, a1, a2, a3, a4, 0, 0)
		return r, errno
	}
	r, _, errno := unix.Syscall6(trap, a1, a2, a3, a4, 0, 0)
	return r, errno
}

// The walk builds the paths it opens in buffers it reuses, NUL-terminated
// as the kernel takes them, rather than making a string of each and a
// copy of that for the system call: tens of thousands of allocations a walk
// on a busy host, which the garbage collector then pays for.

// cPath is path NUL-terminated.
func cPath(path string) []byte { return append([]byte(path), 0) }

// appendPidDir appends root/PID/ to dst: the start of the paths of pid's
// files.
func appendPidDir(dst []byte, root string, pid int) []byte {
	dst = append(append(dst, root...), '/')
	return append(strconv.AppendInt(dst, int64(pid), 10), '/')
}

// fdFile appends to dst the path of pid's fd in its directory dir ("fd",
// "fdinfo"), NUL-terminated.
func (fs FS) fdFile(dst []byte, pid int, dir string, fd int) []byte {
	dst = append(append(appendPidDir(dst, fs.Root, pid), dir...), '/')
	return append(strconv.AppendInt(dst, int64(fd), 10), 0)
}

// pidFile appends to dst the path of name in pid's directory ("comm",
// "ns/user"; "" for the directory), NUL-terminated.
func (fs FS) pidFile(dst []byte, pid int, name string) []byte {
	return append(append(appendPidDir(dst, fs.Root, pid), name...), 0)
}

// goPath is the Go string of a NUL-terminated path, for messages.
func goPath(path []byte) string { return string(bytes.TrimSuffix(path, []byte{0})) }

// atFDCWD is a variable: the constant, negative, converts to no uintptr.
var atFDCWD = unix.AT_FDCWD

func errnoErr(errno unix.Errno) error {
	if errno != 0 {
		return errno
	}
	return nil
}
