package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"

	"github.com/moby/sys/mountinfo"
)

// Mounts reads the mount table of pid's mount namespace as pid sees it
// (mount points relative to its root directory). Path fields are decoded
// (\040 is a space, \011 a tab, \012 a newline, \134 a backslash) and may
// hold bytes that are not UTF-8: render them with DisplayPath. The error
// wraps ErrProcessGone when the process exited.
func (fs FS) Mounts(pid int) ([]*mountinfo.Info, error) {
	data, err := fs.readPid(pid, "mountinfo")
	if errors.Is(err, syscall.EINVAL) {
		// A zombie's mountinfo fails with EINVAL: it has no namespace left.
		if _, nsErr := fs.NamespaceInode(pid, "mnt"); errors.Is(nsErr, ErrProcessGone) {
			return nil, nsErr
		}
	}
	if err != nil {
		return nil, err
	}
	mounts, err := ParseMountinfo(data)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return mounts, nil
}

// ParseMountinfo parses the text of /proc/PID/mountinfo, one entry per
// line in the kernel's order.
func ParseMountinfo(data []byte) ([]*mountinfo.Info, error) {
	mounts, err := mountinfo.GetMountsFromReader(bytes.NewReader(data), nil)
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return mounts, nil
}
