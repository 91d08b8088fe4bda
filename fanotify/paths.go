package fanotify

import (
	"path/filepath"
	"strconv"
	"sync"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// pathResolver turns marks into paths for the tables, on demand: resolving
// costs syscalls per mark, so only queries reading a path column pay. It
// caches what it reads for the snapshot's lifetime, and takes over the
// previous snapshot's handles: a path still naming the marked inode is
// reused for one stat instead of a decode.
type pathResolver struct {
	fs   procfs.FS
	self int // this process's pid in fs (procfs.FS.SelfPID); 0 when fs does not show it

	mu       sync.Mutex
	mounts   map[int][]*mountinfo.Info // by pid; nil entry: unreadable
	handles  map[string]string         // by device and handle
	previous map[string]string         // handles of the previous snapshot
}

// init readies r, taking over prev's handles (nil for none). prev keeps
// none, so the cache holds at most two snapshots' paths.
func (r *pathResolver) init(fs procfs.FS, prev *pathResolver) {
	r.fs = fs
	r.self, _ = fs.SelfPID()
	r.mounts = make(map[int][]*mountinfo.Info)
	r.handles = make(map[string]string)
	if prev != nil {
		prev.mu.Lock()
		r.previous, prev.handles, prev.previous = prev.handles, make(map[string]string), nil
		prev.mu.Unlock()
	}
}

// MarkPaths is the path of each of marks' objects as holder h sees it, in
// order, best effort: for an inode mark or inotify watch the file its handle
// decodes to, for a mount mark the mount point, for a superblock mark a
// mount point of the filesystem. Empty when unknown: no handle printed, a
// handle that does not decode (deleted file, filesystem without
// open_by_handle_at), no CAP_DAC_READ_SEARCH, or the holder gone. A
// mount-namespace mark has none. The handles of one filesystem are decoded
// through a single open of its mount, not one per mark: a group's marks
// usually share a few filesystems.
func (s *Snapshot) MarkPaths(h Holder, marks []procfs.Mark) []string {
	r := &s.paths
	r.mu.Lock()
	defer r.mu.Unlock()
	batch := newHandleBatch()
	defer batch.close()
	paths := make([]string, len(marks))
	for i, m := range marks {
		paths[i] = r.markPath(h, m, batch)
	}
	return paths
}

func (r *pathResolver) markPath(h Holder, m procfs.Mark, batch *handleBatch) string {
	switch m.Kind {
	case procfs.MarkMount:
		for _, mi := range r.mountsOf(h.PID) {
			if uint64(mi.ID) == m.MountID {
				return procfs.DisplayPath(mi.Mountpoint)
			}
		}
	case procfs.MarkFilesystem:
		if mi := mountOfDev(r.mountsOf(h.PID), m.Dev); mi != nil {
			return procfs.DisplayPath(mi.Mountpoint)
		}
	case procfs.MarkInode, procfs.InotifyWatch:
		return procfs.DisplayPath(r.handlePath(h.PID, m, batch))
	}
	return ""
}

// handleBatch holds what one MarkPaths call opens once: the mount
// directories handles are decoded through (by path; -1 for one that could
// not be opened) and this process's fd directory, where a decoded file's
// path is read back with a lookup of one name instead of a walk of
// /proc/self/fd/N. Everything is closed before MarkPaths returns, so that
// no fd of the extension keeps a filesystem from being unmounted.
type handleBatch struct {
	mounts  map[string]int
	selfFDs int
	link    []byte
	// dirsRefused holds the mounts where decoding with O_DIRECTORY was
	// refused too (EPERM: Linux before 6.10, or a filesystem this user
	// namespace does not own), not asked again for every mark.
	dirsRefused map[string]bool
}

func newHandleBatch() *handleBatch {
	fd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fd = -1
	}
	return &handleBatch{mounts: map[string]int{}, selfFDs: fd, dirsRefused: map[string]bool{}}
}

// mount returns an fd of the directory mounted at path, -1 on failure. The
// mount fd of open_by_handle_at must be a real open file (O_PATH is
// refused): O_DIRECTORY keeps the open from touching a device or FIFO
// bind-mounted there.
func (b *handleBatch) mount(path string) int {
	fd, seen := b.mounts[path]
	if !seen {
		var err error
		if fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0); err != nil {
			fd = -1
		}
		b.mounts[path] = fd
	}
	return fd
}

// openByHandle opens the handle's file with O_PATH relative to the
// filesystem mounted at mountPath, and reads back its path; "" on failure.
func (b *handleBatch) openByHandle(mountPath string, h procfs.Handle) string {
	mountFD := b.mount(mountPath)
	if mountFD < 0 || b.selfFDs < 0 {
		return ""
	}
	handle := unix.NewFileHandle(h.Type, h.Raw)
	fd, err := unix.OpenByHandleAt(mountFD, handle, unix.O_PATH|unix.O_CLOEXEC)
	if err == unix.EPERM && !b.dirsRefused[mountPath] {
		// Without CAP_DAC_READ_SEARCH the kernel decodes directories
		// only, asked with O_DIRECTORY (Linux 6.10+, in a user namespace
		// owning the filesystem or mount); most watches are directories.
		fd, err = unix.OpenByHandleAt(mountFD, handle, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
		b.dirsRefused[mountPath] = err == unix.EPERM
	}
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	if b.link == nil {
		b.link = make([]byte, unix.PathMax)
	}
	n, err := unix.Readlinkat(b.selfFDs, strconv.Itoa(fd), b.link)
	if err != nil {
		return ""
	}
	return string(b.link[:n])
}

func (b *handleBatch) close() {
	for _, fd := range b.mounts {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	if b.selfFDs >= 0 {
		unix.Close(b.selfFDs)
	}
}

func (r *pathResolver) mountsOf(pid int) []*mountinfo.Info {
	mounts, seen := r.mounts[pid]
	if !seen {
		mounts, _ = r.fs.Mounts(pid) // unreadable or gone: no paths
		r.mounts[pid] = mounts
	}
	return mounts
}

// mountOfDev returns a mount of the filesystem dev, preferring one of its
// root directory: handles decode to a reachable path through it.
func mountOfDev(mounts []*mountinfo.Info, dev procfs.Dev) *mountinfo.Info {
	var found *mountinfo.Info
	for _, mi := range mounts {
		if uint32(mi.Major) != dev.Major || uint32(mi.Minor) != dev.Minor {
			continue
		}
		if mi.Root == "/" {
			return mi
		}
		if found == nil {
			found = mi
		}
	}
	return found
}

// elsewhere, cached for a handle, says that the namespace it was decoded
// in has no mount reaching the object: no path holds a NUL.
const elsewhere = "\x00"

// handlePath decodes a mark's file handle through a mount of its
// filesystem: one in this process's namespace, else, when none there
// reaches the object, one in the holder's reached through /proc/PID/root.
func (r *pathResolver) handlePath(pid int, m procfs.Mark, batch *handleBatch) string {
	if len(m.Handle.Raw) == 0 {
		return ""
	}
	key := m.Dev.String() + "/" + strconv.Itoa(int(m.Handle.Type)) + "/" + string(m.Handle.Raw)
	if r.self != 0 {
		if p := r.decode(key, m, batch, r.self, ""); p != elsewhere {
			return p
		}
	}
	// The path in the holder's namespace, for it alone: another namespace
	// may reach the file elsewhere.
	if p := r.decode(key+"@"+strconv.Itoa(pid), m, batch, pid, r.fs.Path(strconv.Itoa(pid), "root")); p != elsewhere {
		return p
	}
	return ""
}

// decode is the path of m's object through a mount of its filesystem in
// pid's mount namespace, whose root directory is root ("" for this
// process's): "" when it does not decode, elsewhere when no mount there
// reaches the object. A file outside the root of a bind mount, the only
// mount of its filesystem there, reads back as "/", which does not name
// it. The answer is cached under key, and a path of the previous
// snapshot's is reused while it names the inode.
func (r *pathResolver) decode(key string, m procfs.Mark, batch *handleBatch, pid int, root string) string {
	if p, seen := r.handles[key]; seen {
		return p
	}
	if p := r.previous[key]; p != "" && p != elsewhere && namesInode(filepath.Join(root, p), m) {
		r.handles[key] = p
		return p
	}
	p := elsewhere
	if mi := mountOfDev(r.mountsOf(pid), m.Dev); mi != nil {
		p = batch.openByHandle(filepath.Join(root, mi.Mountpoint), m.Handle)
		if p == "/" && !namesInode(filepath.Join(root, p), m) {
			p = elsewhere
		}
	}
	r.handles[key] = p
	return p
}

// namesInode reports whether path names m's inode now: a rename or
// deletion since the path was read fails it. The mark lives only as long
// as its inode, and paths are reused by handle, which holds the inode's
// generation where the filesystem has one: a mark on a new inode given the
// same number does not find the old path.
func namesInode(path string, m procfs.Mark) bool {
	var st unix.Stat_t
	if unix.Fstatat(unix.AT_FDCWD, path, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	return st.Ino == m.Inode && unix.Major(st.Dev) == m.Dev.Major && unix.Minor(st.Dev) == m.Dev.Minor
}
