package fanotify

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// ioctls on a namespace fd (linux/nsfs.h).
const (
	nsGetParent   = 0xb702 // NS_GET_PARENT: an fd of the parent namespace
	nsGetOwnerUID = 0xb704 // NS_GET_OWNER_UID: the uid that owns a user namespace
)

// maxUserNSDepth is the kernel's nesting limit of user namespaces (32),
// plus the initial one: a bound on the walk up.
const maxUserNSDepth = 33

// ancestorsOf returns the charging chain above the user namespace of every
// group's charge. A namespace is opened through one of its holders; when
// none of them can be read any more it is left out of the map.
func ancestorsOf(fs procfs.FS, groups []*Group) map[uint64][]Charge {
	out := make(map[uint64][]Charge)
	for _, g := range groups {
		ns := g.Charge().UserNS
		if _, done := out[ns]; done {
			continue
		}
		up, err := userNSAncestors(fs.Path(fmt.Sprint(g.Primary().PID), "ns", "user"))
		if err == nil {
			out[ns] = up
		}
	}
	return out
}

// userNSAncestors walks up from the user namespace at path. At each level
// the namespace's owner uid (as this process sees it) is charged in the
// parent namespace. The walk ends at the initial namespace, or at the
// namespace this process runs in, where NS_GET_PARENT fails with EPERM.
func userNSAncestors(path string) ([]Charge, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var up []Charge
	for range maxUserNSDepth {
		owner, err := unix.IoctlGetUint32(fd, nsGetOwnerUID)
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("NS_GET_OWNER_UID: %w", err)
		}
		parent, err := unix.IoctlRetInt(fd, nsGetParent)
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) {
			return up, nil
		}
		if err != nil {
			return nil, fmt.Errorf("NS_GET_PARENT: %w", err)
		}
		var st unix.Stat_t
		err = unix.Fstat(parent, &st)
		if err != nil {
			unix.Close(parent)
			return nil, err
		}
		up = append(up, Charge{UserNS: st.Ino, UID: owner})
		fd = parent
	}
	unix.Close(fd)
	return nil, errors.New("user namespaces nested deeper than the kernel allows")
}
