package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Mounts reads the mount table of pid's mount namespace as pid sees it
// (mount points relative to its root directory). Path fields are decoded
// (\040 is a space, \011 a tab, \012 a newline, \134 a backslash) and may
// hold bytes that are not UTF-8: render them with DisplayPath. The error
// wraps ErrProcessGone when the process exited.
func (fs FS) Mounts(pid int) ([]*mountinfo.Info, error) {
	// Parsed piece by piece as it is read: the text of a namespace of
	// 10,000 mounts is over a megabyte, which growing a buffer to hold it
	// whole copied and faulted in again and again.
	var mounts []*mountinfo.Info
	var parseErr error
	err := mayWait.readLines(fs.Path(strconv.Itoa(pid), "mountinfo"), func(lines []byte) {
		if parseErr == nil {
			mounts, parseErr = appendMounts(mounts, lines)
		}
	})
	if errors.Is(err, syscall.EINVAL) {
		// A zombie's mountinfo fails with EINVAL: it has no namespace left.
		if _, nsErr := fs.NamespaceInode(pid, "mnt"); errors.Is(nsErr, ErrProcessGone) {
			return nil, nsErr
		}
	}
	if err != nil {
		return nil, pidError(pid, err)
	}
	if parseErr != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, parseErr)
	}
	return mounts, nil
}

// Root identifies the root directory of a process: the mount it is on
// (0 before Linux 5.8, which does not tell) and its device and inode.
type Root struct {
	MountID, Dev, Inode uint64
}

// ProcessRoot identifies pid's root directory. The kernel leaves out of
// /proc/PID/mountinfo every mount that PID's root does not reach, so
// processes of one namespace with the same root read the same mounts, and
// a chrooted one fewer. The error wraps ErrProcessGone when the process
// exited.
func (fs FS) ProcessRoot(pid int) (Root, error) {
	path := fs.Path(strconv.Itoa(pid), "root")
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO|unix.STATX_MNT_ID, &st); err != nil {
		return Root{}, pidError(pid, &os.PathError{Op: "statx", Path: path, Err: err})
	}
	return Root{MountID: st.Mnt_id, Dev: unix.Mkdev(st.Dev_major, st.Dev_minor), Inode: st.Ino}, nil
}

// Reachable reports which of mounts (one namespace as Mounts reads it
// through one process) a path from that process's root reaches. Another
// mount can cover one: a mount on its root (an overmount, listed as its
// child at the same mount point), or a sibling mounted later on a
// directory above its mount point. Nothing below a covered mount is
// reached either, but what covers it is. No path leads to a covered mount,
// so no mount mark can be put on it. Path lookups start on the root
// without crossing what is mounted on it, and ".." from the root crosses to
// the top of what is: of the mounts stacked on "/", the lowest and the top
// one are reached, those between them are covered.
func Reachable(mounts []*mountinfo.Info) []bool {
	t := newMountTree(mounts)
	out := make([]bool, len(mounts))
	for i := range mounts {
		out[i] = t.spotReached(i) && !t.overmounted[i]
	}
	return out
}

// mountTree indexes the mounts of one namespace for Reachable, by their
// position in the list.
type mountTree struct {
	mounts []*mountinfo.Info
	parent []int // position of the parent, -1 when it is not listed
	// overmounted marks the mounts with another on their root, which hides
	// their directories (but on "/", where lookups start, see covered);
	// stackedOn those on "/" with another stacked on them there.
	overmounted, stackedOn []bool
	// depths has bit d set for a parent (by ID) when a mount point on it
	// is d directories deep (mod 64): siblings are looked for only there.
	depths   map[int]uint64
	occupied map[spot]bool // where mounts are, built when first needed
	reached  []int8        // spotReached: 0 not known yet, 1 yes, -1 no
}

// spot is where a mount is: the mount it is on, and its mount point.
type spot struct {
	parent int
	point  string
}

func newMountTree(mounts []*mountinfo.Info) *mountTree {
	t := &mountTree{
		mounts:      mounts,
		parent:      make([]int, len(mounts)),
		overmounted: make([]bool, len(mounts)),
		stackedOn:   make([]bool, len(mounts)),
		depths:      make(map[int]uint64),
		reached:     make([]int8, len(mounts)),
	}
	at := make(map[int]int, len(mounts)) // mount ID -> position
	for i, m := range mounts {
		at[m.ID] = i
		t.depths[m.Parent] |= 1 << (depth(m.Mountpoint) % 64)
	}
	for i, m := range mounts {
		p, listed := at[m.Parent]
		if !listed || p == i {
			p = -1 // the namespace's root mount is its own parent
		}
		t.parent[i] = p
		switch {
		case p < 0 || m.Mountpoint != mounts[p].Mountpoint:
		case m.Mountpoint == "/":
			t.stackedOn[p] = true
		default:
			t.overmounted[p] = true
		}
	}
	return t
}

// onRoot reports a mount stacked on the root: on "/" of a mount on "/".
func (t *mountTree) onRoot(i int) bool {
	p := t.parent[i]
	return p >= 0 && t.mounts[i].Mountpoint == "/" && t.mounts[p].Mountpoint == "/"
}

// covered reports a mount covered from its parent's side: stacked on the
// root below the top of the stack, or below a sibling's mount point (a
// directory of the parent, below where the parent is mounted).
func (t *mountTree) covered(i int) bool {
	if t.onRoot(i) {
		return t.stackedOn[i]
	}
	m, top := t.mounts[i], "/"
	if p := t.parent[i]; p >= 0 {
		top = t.mounts[p].Mountpoint
	}
	depths := t.depths[m.Parent]
	for dir, d := m.Mountpoint, depth(m.Mountpoint); ; {
		end := strings.LastIndexByte(dir, '/')
		if end <= len(top) {
			return false
		}
		dir, d = dir[:end], d-1
		if depths&(1<<(d%64)) != 0 && t.occupiedAt(spot{m.Parent, dir}) {
			return true
		}
	}
}

// depth counts the directories of a mount point ("/a/b" is 2 deep).
func depth(path string) int { return strings.Count(path, "/") }

func (t *mountTree) occupiedAt(s spot) bool {
	if t.occupied == nil {
		t.occupied = make(map[spot]bool, len(t.mounts))
		for _, m := range t.mounts {
			t.occupied[spot{m.Parent, m.Mountpoint}] = true
		}
	}
	return t.occupied[s]
}

// spotReached reports whether a path reaches the mount point of the mount
// at i (that mount then, unless it is overmounted). A mount reached
// through its parent needs the parent's directories in reach, an overmount
// only the parent's mount point; the top of a stack on the root, reached
// through "..", nothing.
func (t *mountTree) spotReached(i int) bool {
	if t.reached[i] != 0 {
		return t.reached[i] > 0
	}
	t.reached[i] = 1 // a loop of parents, which the kernel never prints, ends here
	ok := !t.covered(i)
	if p := t.parent[i]; ok && p >= 0 && !t.onRoot(i) {
		ok = (t.mounts[i].Mountpoint == t.mounts[p].Mountpoint || !t.overmounted[p]) && t.spotReached(p)
	}
	if !ok {
		t.reached[i] = -1
	}
	return ok
}

// ParseMountinfo parses the text of /proc/PID/mountinfo, one entry per
// line in the kernel's order. It reads what mountinfo.GetMountsFromReader
// reads, but lines of any length: that one stops at 64 KiB, which the super
// options of an overlayfs with many layers exceed.
func ParseMountinfo(data []byte) ([]*mountinfo.Info, error) {
	return appendMounts(make([]*mountinfo.Info, 0, bytes.Count(data, []byte{'\n'})+1), data)
}

// appendMounts appends the entries of whole mountinfo lines to mounts.
func appendMounts(mounts []*mountinfo.Info, lines []byte) ([]*mountinfo.Info, error) {
	for line := range bytes.Lines(lines) {
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
		m, err := parseMountLine(string(line))
		if err != nil {
			return mounts, fmt.Errorf("mountinfo: %w", err)
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

// parseMountLine reads one line of mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// six fields, optional fields ended by "-", then type, source and super
// options. The separator is searched from the end, since sources of cifs
// shares printed by kernels before 3.10 may hold spaces.
func parseMountLine(text string) (*mountinfo.Info, error) {
	var room [16]string // most lines have 10 or 11 fields: no allocation
	fields := appendFields(room[:0], text)
	n := len(fields)
	if n < 10 {
		return nil, fmt.Errorf("line %q: %d fields, want at least 10", text, n)
	}
	sep := n - 4
	for fields[sep] != "-" {
		if sep--; sep == 5 {
			return nil, fmt.Errorf("line %q: no - separator", text)
		}
	}
	major, minor, ok := strings.Cut(fields[2], ":")
	if !ok {
		return nil, fmt.Errorf("line %q: %q is not major:minor", text, fields[2])
	}
	return &mountinfo.Info{
		ID:         lenientInt(fields[0]),
		Parent:     lenientInt(fields[1]),
		Major:      lenientInt(major),
		Minor:      lenientInt(minor),
		Root:       unescapeOctal(fields[3]),
		Mountpoint: unescapeOctal(fields[4]),
		Options:    fields[5],
		Optional:   strings.Join(fields[6:sep], " "),
		FSType:     unescapeOctal(fields[sep+1]),
		Source:     unescapeOctal(fields[sep+2]),
		VFSOptions: fields[sep+3],
	}, nil
}

// appendFields appends the space-separated fields of text, empty ones
// included, as strings.Split would return them.
func appendFields(fields []string, text string) []string {
	for {
		field, rest, more := strings.Cut(text, " ")
		fields = append(fields, field)
		if !more {
			return fields
		}
		text = rest
	}
}

// lenientInt reads a number the kernel printed; like the moby parser it
// reads anything else as 0 rather than failing the whole table.
func lenientInt(s string) int {
	v, _ := strconv.Atoi(s)
	return v
}

// unescapeOctal decodes the kernel's \NNN escapes of mountinfo paths (\040
// space, \011 tab, \012 newline, \134 backslash), which stand for ASCII
// bytes only; anything else, UTF-8 or not, passes through.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && (s[i+1] == '0' || s[i+1] == '1') && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
