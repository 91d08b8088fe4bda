package fanotify

import (
	"errors"
	"fmt"
	"strconv"

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

// chargeView computes what the kernel charges, with every uid as the
// namespace charged sees it.
//
// The kernel charges a kernel uid (kuid) in a user namespace: the creator's
// euid in the creator's namespace, then at each level above it the kuid
// owning the namespace below, in its parent (kernel/ucount.c). Everything
// this process reads shows a kuid mapped into its own user namespace
// instead: the owner of /proc/PID and NS_GET_OWNER_UID alike. A
// namespace names its kuids through its uid_map, and /proc/PID/uid_map read
// from outside PID's namespace maps that namespace's uids onto the reader's,
// so inverting it gives the namespace's own uid: root of a rootless
// container is uid 0 there (what its /proc/sys/user limits count), though
// the host reads 54321.
//
// Only namespaces below the reader's are translated: NS_GET_PARENT stops at
// the reader's namespace, whose uids are read in its own terms already (and
// whose uid_map, read from inside, would show its parent's). Each needs a
// process living in it to read its uid_map: a holder when there is one,
// otherwise any process found in it (a middle level of nested namespaces
// often holds nothing itself, only the runtime waiting for the inner one).
// A namespace with no process left cannot be read: its uids stay as this
// process sees them, and it is listed as untranslated.
type chargeView struct {
	fs     procfs.FS
	chains map[uint64]chain        // by user namespace
	pids   map[uint64]int          // a process living in each user namespace
	maps   map[uint64]procfs.IDMap // uid_maps read so far; nil when unreadable
	listed bool                    // pids has every process's namespace
	// untranslated holds the namespaces some uid of which stayed as read.
	untranslated map[uint64]bool
}

// chain is a user namespace's charging chain above it; known is false when
// the namespace could not be opened.
type chain struct {
	up    []Charge
	known bool
}

func newChargeView(fs procfs.FS, groups []*Group) *chargeView {
	v := &chargeView{
		fs:           fs,
		chains:       make(map[uint64]chain),
		pids:         make(map[uint64]int),
		maps:         make(map[uint64]procfs.IDMap),
		untranslated: make(map[uint64]bool),
	}
	for _, g := range groups {
		for _, h := range g.Holders {
			if _, ok := v.pids[h.UserNS]; !ok {
				v.pids[h.UserNS] = h.PID
			}
		}
	}
	return v
}

// charge is what a group held by h is charged to, h standing in for the
// creator (see Group.Charge).
func (v *chargeView) charge(h Holder) Charge {
	uid := h.EUID
	// A namespace with levels above it lies below this process's one.
	if c := v.chainOf(h); len(c.up) > 0 {
		uid = v.inside(h.UserNS, uid)
	}
	return Charge{UserNS: h.UserNS, UID: uid}
}

// ancestors returns the chains that could be read, by namespace.
func (v *chargeView) ancestors() map[uint64][]Charge {
	out := make(map[uint64][]Charge, len(v.chains))
	for ns, c := range v.chains {
		if c.known {
			out[ns] = c.up
		}
	}
	return out
}

// chainOf walks up from h's user namespace once per namespace. Every level
// but the last is below this process's namespace and is translated; the
// last is this process's namespace, whose uids are read as they are.
func (v *chargeView) chainOf(h Holder) chain {
	if c, done := v.chains[h.UserNS]; done {
		return c
	}
	up, err := userNSAncestors(v.fs.Path(strconv.Itoa(h.PID), "ns", "user"))
	for i := range len(up) - 1 {
		up[i].UID = v.inside(up[i].UserNS, up[i].UID)
	}
	c := chain{up: up, known: err == nil}
	v.chains[h.UserNS] = c
	return c
}

// inside translates uid, as this process reads it, into user namespace
// ns; unchanged when ns's uid_map cannot be read or does not map it.
func (v *chargeView) inside(ns uint64, uid uint32) uint32 {
	if got, ok := v.uidMap(ns).Inside(uid); ok {
		return got
	}
	v.untranslated[ns] = true
	return uid
}

// uidMap reads ns's uid_map through a process living in it, looking for
// one among every process the first time a namespace has no holder.
func (v *chargeView) uidMap(ns uint64) procfs.IDMap {
	if m, done := v.maps[ns]; done {
		return m
	}
	pid, ok := v.pids[ns]
	if !ok && !v.listed {
		v.listProcesses()
		pid, ok = v.pids[ns]
	}
	var m procfs.IDMap
	if ok {
		m, _ = v.fs.UIDMap(pid) // gone or unreadable: uids stay as read
	}
	v.maps[ns] = m
	return m
}

// listProcesses finds a process in every user namespace.
func (v *chargeView) listProcesses() {
	v.listed = true
	pids, err := v.fs.Pids()
	if err != nil {
		return
	}
	for _, pid := range pids {
		ns, err := v.fs.NamespaceInode(pid, "user")
		if _, seen := v.pids[ns]; err == nil && !seen {
			v.pids[ns] = pid
		}
	}
}

// userNSAncestors walks up from the user namespace at path. At each level
// the namespace's owner (NS_GET_OWNER_UID: its kuid as this process sees
// it) is charged in the parent namespace. The walk ends at the initial
// namespace, or at the namespace this process runs in, where NS_GET_PARENT
// fails with EPERM: it returns only namespaces at or below the caller's.
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
