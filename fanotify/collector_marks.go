package fanotify

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unique"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// Watch statuses.
const (
	StatusActive   = "active"   // marked; every configured event reported
	StatusDegraded = "degraded" // marked with losses, or skipped at a limit
	StatusFailed   = "failed"   // not watched
	StatusDisabled = "disabled" // the collector is off
)

// WatchStatus is the outcome of watching one configured path.
type WatchStatus struct {
	Path string
	// Strategy is the mark type in use: filesystem, mount or inode.
	Strategy string
	Status   string
	Error    string
	// LostEvents names what the chosen mark or group cannot report.
	LostEvents string
	// Marks is how many marks this path added to the group: 0 when it
	// shares the filesystem or mount mark of an earlier path.
	Marks int
}

type watch struct {
	WatchStatus
	// match is the path as the kernel reports it (symlinks resolved):
	// events are kept when their path is at or below it.
	match string
	name  unique.Handle[string]
	// handle is the marked path's fsid and file handle, as FID records
	// carry them (see handleKey); "" when unknown.
	handle string
}

// markKind is one fanotify mark type, from the widest to the narrowest.
type markKind struct {
	name  string
	flags uint
}

var (
	markFilesystem = markKind{"filesystem", unix.FAN_MARK_FILESYSTEM}
	markMount      = markKind{"mount", unix.FAN_MARK_MOUNT}
	markInode      = markKind{"inode", unix.FAN_MARK_INODE}
)

// markChain lists the mark types to try for a collector.mark value.
func markChain(strategy string) []markKind {
	switch strategy {
	case "filesystem":
		return []markKind{markFilesystem}
	case "mount":
		return []markKind{markMount}
	case "inode":
		return []markKind{markInode}
	}
	return []markKind{markFilesystem, markMount, markInode}
}

// fdEvents are the events a group reports without file handles, and the
// only ones a mount mark carries: the others (directory entries, attributes,
// self events) happen on inodes, not on paths.
const fdEvents = unix.FAN_ACCESS | unix.FAN_MODIFY | unix.FAN_CLOSE | unix.FAN_OPEN | unix.FAN_OPEN_EXEC

// cacheEvents keep the directory-path cache right in FID mode: a directory
// renamed or deleted must be forgotten even if those events are not wanted.
const cacheEvents = unix.FAN_MOVED_FROM | unix.FAN_DELETE

var eventBits = map[string]uint64{
	"access": unix.FAN_ACCESS, "modify": unix.FAN_MODIFY, "open": unix.FAN_OPEN,
	"open_exec": unix.FAN_OPEN_EXEC, "close_write": unix.FAN_CLOSE_WRITE,
	"close_nowrite": unix.FAN_CLOSE_NOWRITE, "create": unix.FAN_CREATE,
	"delete": unix.FAN_DELETE, "moved_from": unix.FAN_MOVED_FROM,
	"moved_to": unix.FAN_MOVED_TO, "attrib": unix.FAN_ATTRIB,
	"delete_self": unix.FAN_DELETE_SELF, "move_self": unix.FAN_MOVE_SELF,
}

func configuredMask(events []string) uint64 {
	var mask uint64
	for _, e := range events {
		mask |= eventBits[e]
	}
	return mask
}

// missingEvents names the configured events absent from mask.
func missingEvents(configured []string, mask uint64) []string {
	var out []string
	for _, e := range configured {
		if eventBits[e]&mask == 0 {
			out = append(out, e)
		}
	}
	return out
}

// markAll marks every configured path. Paths on one filesystem (or mount)
// share its single mark: the kernel charges one mark per object.
func (c *Collector) markAll() {
	marked := map[string]bool{}
	for _, p := range c.cfg.Paths {
		w := &watch{WatchStatus: WatchStatus{Path: p}, name: unique.Make(procfs.DisplayPath(p))}
		c.watches = append(c.watches, w)
		if err := c.markPath(w, marked); err != nil {
			w.Error = err.Error()
		}
	}
}

// markPath tries the strategy's mark types in turn. It moves to the next
// type only when the kernel or the filesystem refuses the current one; a
// limit (ENOSPC) skips the path, since every type costs a mark.
func (c *Collector) markPath(w *watch, marked map[string]bool) error {
	w.Status = StatusFailed
	resolved, err := filepath.EvalSymlinks(w.Path)
	if err != nil {
		return err
	}
	w.match = resolved
	var refusals []string
	for _, kind := range markChain(c.cfg.Mark) {
		mask, lost, missing := c.markMask(kind, w.Path)
		if mask == 0 {
			refusals = append(refusals, kind.name+" mark: cannot report "+lost)
			continue
		}
		err := c.markOnce(kind, resolved, mask, marked, w)
		switch {
		case err == nil:
			w.Strategy, w.LostEvents = kind.name, lost
			w.Status = StatusActive
			if missing || len(refusals) > 0 {
				w.Status = StatusDegraded
			}
			c.addMountFD(resolved)
			w.handle = c.handleKey(resolved)
			return joinRefusals(refusals)
		case errors.Is(err, unix.ENOSPC):
			w.Status = StatusDegraded
			return fmt.Errorf("fanotify_mark: ENOSPC%s", limitNote(c.proc, procfs.FanotifyMarks))
		case isMarkRefusal(err):
			refusals = append(refusals, kind.name+" mark: "+errnoName(err))
		default:
			return fmt.Errorf("fanotify_mark %s: %s", kind.name, errnoName(err))
		}
	}
	return joinRefusals(refusals)
}

func joinRefusals(refusals []string) error {
	if len(refusals) == 0 {
		return nil
	}
	return errors.New(strings.Join(refusals, "; "))
}

// isMarkRefusal reports the errors of a kernel or filesystem that cannot
// carry a mark type. EPERM counts: without CAP_SYS_ADMIN in the initial user
// namespace only inode marks are allowed.
func isMarkRefusal(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EPERM) || isFilesystemRefusal(err)
}

// markMask returns the mask for a mark of kind on path, what the configured
// events lose with it, and whether configured events go unreported.
func (c *Collector) markMask(kind markKind, path string) (mask uint64, lost string, missing bool) {
	reported := c.eventMask
	if kind == markMount {
		reported &= fdEvents
	}
	var losses []string
	if names := missingEvents(c.cfg.Events, reported); len(names) > 0 {
		why := "need FAN_REPORT_FID"
		if c.fidMode {
			why = "mount marks carry no directory-entry, attribute or self events"
		}
		losses = append(losses, strings.Join(names, ",")+" ("+why+")")
	}
	missing = len(losses) > 0
	mask = reported
	if c.fidMode && kind != markMount {
		mask |= cacheEvents
	}
	if kind == markInode {
		losses = append(losses, "events below the direct children of "+path+" (inode marks see direct children only)")
		mask |= unix.FAN_EVENT_ON_CHILD
	}
	lost = strings.Join(losses, "; ")
	if reported == 0 {
		return 0, lost, missing
	}
	return mask | unix.FAN_ONDIR, lost, missing
}

// markOnce adds the mark unless an earlier path already added the same one.
func (c *Collector) markOnce(kind markKind, path string, mask uint64, marked map[string]bool, w *watch) error {
	key, err := c.markObject(kind, path)
	if err != nil {
		return err
	}
	if marked[key] {
		return nil
	}
	if err := unix.FanotifyMark(c.group, unix.FAN_MARK_ADD|kind.flags, mask, unix.AT_FDCWD, path); err != nil {
		return err
	}
	marked[key] = true
	w.Marks = 1
	return nil
}

// markObject identifies the kernel object a mark of kind on path attaches
// to: the superblock, the mount or the inode. (statx reports the mount ID
// only from Linux 5.8, and not at all before 4.11.)
func (c *Collector) markObject(kind markKind, path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", &os.PathError{Op: "stat", Path: path, Err: err}
	}
	switch kind {
	case markMount:
		id, err := c.mountID(path)
		return fmt.Sprintf("mount %d", id), err
	case markInode:
		return fmt.Sprintf("inode %d %d", st.Dev, st.Ino), nil
	}
	return fmt.Sprintf("filesystem %d", st.Dev), nil
}

// mountID is the ID of the mount path is on, from the fdinfo of an O_PATH
// fd opened on it.
func (c *Collector) mountID(path string) (uint64, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	return c.proc.OwnFDMountID(fd)
}

// addMountFD keeps an fd on the mount path is on, one per mount of each
// marked filesystem (by fsid), for open_by_handle_at (see openHandle). fd
// mode needs none.
func (c *Collector) addMountFD(path string) {
	if !c.fidMode {
		return
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return
	}
	id := fsidKey(st.Fsid.Val[0], st.Fsid.Val[1])
	// Not O_PATH: open_by_handle_at refuses O_PATH fds (EBADF).
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	mnt, err := c.proc.OwnFDMountID(fd)
	if err != nil || slices.ContainsFunc(c.mountFDs[id], func(m mountFD) bool { return m.mnt == mnt }) {
		unix.Close(fd)
		return
	}
	c.mountFDs[id] = append(c.mountFDs[id], mountFD{fd: fd, mnt: mnt})
}

// matchPaths resolves symlinks so configured paths compare with the paths
// the kernel reports; a path that does not exist is kept as written.
func matchPaths(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		out = append(out, filepath.Clean(p))
	}
	return slices.Clip(out)
}

// under reports whether path is dir or below it.
func under(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return strings.HasPrefix(path, dir) && (len(path) == len(dir) || path[len(dir)] == '/')
}
