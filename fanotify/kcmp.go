package fanotify

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// kcmpFile is KCMP_FILE: compare two fds' open files.
const kcmpFile = 0

// errGone is an fd closed, or a process exited, since the walk.
var errGone = errors.New("fd closed or process exited")

// kernelFileOrder orders two fds' open files as kcmp(2) does: 0 for the
// same file, 1 and 2 for before and after in an order of the kernel's own
// (its pointers, obfuscated), 3 for unordered. Another error means kcmp is
// missing (no CONFIG_KCMP) or refused (no ptrace access to one of the
// processes). The call is raw, for the reason the walk's are (procfs's
// quick system calls): it waits on nothing but the two processes' exec
// locks, held for a moment during an exec, and SELECT * of the per-mark
// tables makes 18,000 of them on the benchmark's busy host in a fresh
// extension (3,000 in a long-lived one: see dedup).
func kernelFileOrder(a, b *procfs.NotifyFD) (int, error) {
	r, _, errno := unix.RawSyscall6(unix.SYS_KCMP, uintptr(a.PID), uintptr(b.PID), kcmpFile, uintptr(a.FD), uintptr(b.FD), 0)
	switch {
	case errors.Is(errno, unix.ESRCH), errors.Is(errno, unix.EBADF):
		return 0, errGone
	case errno != 0:
		return 0, errno
	}
	switch r {
	case 0:
		return 0, nil
	case 1:
		return -1, nil
	case 2:
		return 1, nil
	}
	return 0, fmt.Errorf("kcmp: files of pid %d fd %d and pid %d fd %d are unordered", a.PID, a.FD, b.PID, b.FD)
}
