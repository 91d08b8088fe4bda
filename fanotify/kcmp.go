package fanotify

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// kcmpFile is KCMP_FILE: compare two fds' open files.
const kcmpFile = 0

// sameOpenFile asks the kernel whether two fds are the same open file:
// kcmp(2) returns 0 for the same file. An fd or process gone since the walk
// is not the same file. An error means kcmp is missing (no CONFIG_KCMP) or
// refused (no ptrace access to one of the processes).
func sameOpenFile(a, b *procfs.NotifyFD) (bool, error) {
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a.PID), uintptr(b.PID), kcmpFile, uintptr(a.FD), uintptr(b.FD), 0)
	switch {
	case errno == 0:
		return r == 0, nil
	case errors.Is(errno, unix.ESRCH), errors.Is(errno, unix.EBADF):
		return false, nil
	}
	return false, errno
}
