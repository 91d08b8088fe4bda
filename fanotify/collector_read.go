package fanotify

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unique"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// readBufferSize is what one read of the group may return: large enough
// for thousands of events per system call (fatrace uses the same).
const readBufferSize = 256 << 10

// coalesceDelay is how long the reader waits after a read that did not fill
// half the buffer, so that events arrive in batches: one system call and one
// /proc lookup per process then serve many events. The kernel queue (16384
// events by default) absorbs far more than arrives in this time.
const coalesceDelay = 2 * time.Millisecond

// maxRememberedProcs bounds the identities kept for exited processes.
const maxRememberedProcs = 4096

// maxCachedDirs bounds the directory-handle cache; it is emptied when full.
const maxCachedDirs = 1 << 16

const unknownUID = ^uint32(0)

// Layout of struct fanotify_event_metadata and the info records.
const (
	metadataLen  = unix.FAN_EVENT_METADATA_LEN
	infoHeaderLn = 4  // info_type, pad, len
	fidHeaderLen = 20 // header, fsid (8), handle_bytes (4), handle_type (4)
)

// readLoop is the collector's one reader goroutine. It returns when Stop
// signals the stop eventfd.
func (c *Collector) readLoop() {
	defer close(c.done)
	r := newEventReader(c)
	buf := make([]byte, readBufferSize)
	for {
		if c.beforeRead != nil {
			c.beforeRead()
		}
		if !c.waitReadable() {
			return
		}
		n, err := unix.Read(c.group, buf)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			continue
		case err != nil:
			// Such as EMFILE in fd mode: no fd left for an event.
			c.setReadError(fmt.Errorf("reading the fanotify group: %w", err))
			time.Sleep(10 * time.Millisecond)
			continue
		}
		c.record(r.decode(buf[:n], time.Now().UnixNano()), r.unresolved)
		if n < len(buf)/2 {
			time.Sleep(coalesceDelay)
		}
	}
}

// waitReadable blocks until the group has events, and reports false once
// Stop was called. The group is polled only when the reader is about to
// read: a group kept in an epoll set (Go's netpoller) would wake a thread
// for every event queued while the reader sleeps.
func (c *Collector) waitReadable() bool {
	fds := []unix.PollFd{{Fd: int32(c.group), Events: unix.POLLIN}, {Fd: int32(c.stop), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == nil {
			return fds[1].Revents == 0
		}
		if err != unix.EINTR {
			c.setReadError(fmt.Errorf("poll: %w", err))
			return false
		}
	}
}

// eventReader turns raw events into Events. Only the reader goroutine uses it.
type eventReader struct {
	c    *Collector
	self int32
	// ownPids tells that /proc numbers processes as events do (see
	// readProcess).
	ownPids bool
	// dirs maps a directory's fsid+file handle to its path (FID mode), and
	// dirKeys its path back to the handle.
	dirs, dirKeys map[string]string
	// dirsPerRead empties dirs before each read: mount marks cannot see
	// directory renames, which would leave stale paths behind.
	dirsPerRead bool
	// procs caches command and uid per pid for one read: a pid seen in a
	// later read may belong to another process by then, or have exec'd.
	procs map[int32]procInfo
	// known keeps what earlier reads learnt about each pid, for events
	// read after their process exited (nobody else holds the pid then).
	known map[int32]procInfo
	out   []Event
	// unresolved counts the events of one read whose path could not be
	// read back (a directory deleted meanwhile, or one this process may not
	// open by handle).
	unresolved uint64
	link       []byte
	empty      unique.Handle[string]
}

type procInfo struct {
	comm unique.Handle[string]
	uid  uint32
}

func newEventReader(c *Collector) *eventReader {
	r := &eventReader{
		c:       c,
		self:    int32(os.Getpid()),
		ownPids: c.proc.InOwnPidNamespace(),
		dirs:    map[string]string{},
		dirKeys: map[string]string{},
		procs:   map[int32]procInfo{},
		known:   map[int32]procInfo{},
		link:    make([]byte, unix.PathMax),
		empty:   unique.Make(""),
	}
	for _, w := range c.watches {
		r.dirsPerRead = r.dirsPerRead || (c.fidMode && w.Strategy == markMount.name)
	}
	return r
}

// decode walks one read's events (FAN_EVENT_OK / FAN_EVENT_NEXT).
func (r *eventReader) decode(buf []byte, nowNs int64) []Event {
	clear(r.procs)
	if r.dirsPerRead {
		r.forgetDirs()
	}
	r.out = r.out[:0]
	r.unresolved = 0
	for len(buf) >= metadataLen {
		n := binary.NativeEndian.Uint32(buf)
		if n < metadataLen || int(n) > len(buf) {
			break
		}
		r.decodeEvent(buf[:n], nowNs)
		buf = buf[n:]
	}
	return r.out
}

func (r *eventReader) decodeEvent(ev []byte, nowNs int64) {
	vers := ev[4]
	infoOff := int(binary.NativeEndian.Uint16(ev[6:]))
	mask := binary.NativeEndian.Uint64(ev[8:])
	fd := int32(binary.NativeEndian.Uint32(ev[16:]))
	pid := int32(binary.NativeEndian.Uint32(ev[20:]))

	// Every event fd is closed, whatever becomes of the event.
	var path string
	ok := false
	if fd >= 0 {
		path, ok = r.fdPath(int(fd))
		unix.Close(int(fd))
	}
	switch {
	case vers != unix.FANOTIFY_METADATA_VERSION:
		r.c.setReadError(fmt.Errorf("fanotify metadata version %d, want %d", vers, unix.FANOTIFY_METADATA_VERSION))
		return
	case mask&unix.FAN_Q_OVERFLOW != 0:
		r.out = append(r.out, Event{TimeNs: nowNs, Mask: unix.FAN_Q_OVERFLOW, UID: unknownUID, dir: r.empty, comm: r.empty, watch: r.empty})
		return
	case pid == r.self:
		return
	}
	if r.c.fidMode && infoOff >= metadataLen && infoOff <= len(ev) {
		path, ok = r.fidPath(ev[infoOff:], mask)
	}
	if mask&r.c.eventMask == 0 {
		return
	}
	if !ok {
		r.unresolved++
		return
	}
	if w := r.c.watchFor(path); w != nil {
		r.appendEvent(nowNs, mask, pid, path, w)
	}
}

// appendEvent records an event on path, under watch w, caused by pid.
func (r *eventReader) appendEvent(nowNs int64, mask uint64, pid int32, path string, w *watch) {
	proc := r.process(pid)
	dir, name := splitPath(procfs.DisplayPath(path))
	r.out = append(r.out, Event{
		TimeNs: nowNs,
		Mask:   mask & (r.c.eventMask | unix.FAN_ONDIR),
		PID:    pid,
		UID:    proc.uid,
		dir:    unique.Make(dir),
		name:   name,
		comm:   proc.comm,
		watch:  w.name,
	})
}

// splitPath splits an absolute path into its directory and a copy of the
// last element, so the event does not keep the whole path alive.
func splitPath(path string) (dir, name string) {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/", strings.Clone(path[i+1:])
	}
	return path[:i], strings.Clone(path[i+1:])
}

// fidPath builds the event's path from its info records: the parent
// directory's handle plus the entry name, or the object's own handle.
func (r *eventReader) fidPath(records []byte, mask uint64) (string, bool) {
	var dirKey, objKey []byte
	var name string
	for len(records) >= infoHeaderLn {
		n := int(binary.NativeEndian.Uint16(records[2:]))
		if n < infoHeaderLn || n > len(records) {
			break
		}
		rec := records[:n]
		records = records[n:]
		key, rest, ok := splitFid(rec)
		if !ok {
			continue
		}
		switch rec[0] {
		case unix.FAN_EVENT_INFO_TYPE_DFID_NAME:
			dirKey, name = key, cString(rest)
		case unix.FAN_EVENT_INFO_TYPE_DFID:
			dirKey = key
		case unix.FAN_EVENT_INFO_TYPE_FID:
			objKey = key
		}
	}
	var path string
	var ok bool
	if dirKey != nil {
		var dir string
		if dir, ok = r.dirPath(dirKey); ok {
			path = joinName(dir, name)
		}
	}
	// The object's own handle names it when its directory's cannot be
	// opened: a watched file, without CAP_DAC_READ_SEARCH.
	if !ok && objKey != nil {
		path, ok = r.handlePath(objKey, mask&unix.FAN_ONDIR != 0)
	}
	if mask&unix.FAN_ONDIR != 0 && mask&cacheEvents != 0 {
		r.forgetDir(mask, path, ok)
	}
	return path, ok
}

// splitFid returns a fid record's fsid+handle, the cache key and
// open_by_handle_at's input, and what follows it (a name, for *_NAME records).
func splitFid(rec []byte) (key, rest []byte, ok bool) {
	if len(rec) < fidHeaderLen {
		return nil, nil, false
	}
	end := fidHeaderLen + int(binary.NativeEndian.Uint32(rec[12:]))
	if end > len(rec) {
		return nil, nil, false
	}
	return rec[4:end], rec[end:], true
}

func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// joinName is the path of name in dir; "" (outside every watched mount,
// see openHandle) stays "".
func joinName(dir, name string) string {
	switch {
	case dir == "" || name == "" || name == ".":
		return dir
	case dir == "/":
		return "/" + name
	}
	return dir + "/" + name
}

// dirPath resolves a directory handle through the cache.
func (r *eventReader) dirPath(key []byte) (string, bool) {
	if p, ok := r.dirs[string(key)]; ok {
		return p, true
	}
	p, ok := r.handlePath(key, true)
	if !ok {
		return "", false
	}
	if len(r.dirs) >= maxCachedDirs {
		r.forgetDirs()
	}
	r.dirs[string(key)] = p
	r.dirKeys[p] = string(key)
	return p, true
}

// forgetDir keeps the directory cache right after a directory at path
// (known: resolved) went. A deleted directory was empty: its own entry is
// all that goes (by path: the event carries no handle of the directory
// itself). A moved one takes every path below it along, known or not: the
// cache starts over. Searching the cache for the paths below would cost
// all of it per event, and an rm -rf anywhere on a marked filesystem
// quadratic time.
func (r *eventReader) forgetDir(mask uint64, path string, known bool) {
	switch {
	case mask&unix.FAN_MOVED_FROM != 0:
		r.forgetDirs()
	case known:
		delete(r.dirs, r.dirKeys[path])
		delete(r.dirKeys, path)
	}
}

func (r *eventReader) forgetDirs() {
	clear(r.dirs)
	clear(r.dirKeys)
}

// handlePath resolves a handle (fsid, handle_bytes, handle_type, f_handle)
// of a directory (isDir) or another file: opened on the filesystem it came
// from, or else one of the marked paths.
func (r *eventReader) handlePath(key []byte, isDir bool) (string, bool) {
	if p, ok := r.openHandle(key, isDir); ok {
		return p, true
	}
	return r.c.markedPath(key)
}

// openHandle opens a handle through each mount of its filesystem that a
// watched path is on, and reads the path back: the first that a watch
// takes, else the first read (an event outside every watch). A file reads
// back through a mount as that mount reaches it: below a bind mount's root
// it has another path through the whole filesystem's mount, and outside
// that root it reads back as "/", which does not name it. A handle that
// only reads back so lies outside every watched mount: "" stands for it.
// A directory is opened O_DIRECTORY, which open_by_handle_at asks of a
// caller without CAP_DAC_READ_SEARCH (Linux 6.10+, in a user namespace
// owning the filesystem or mount).
func (r *eventReader) openHandle(key []byte, isDir bool) (string, bool) {
	n := binary.NativeEndian.Uint32(key[8:])
	handle := unix.NewFileHandle(int32(binary.NativeEndian.Uint32(key[12:])), key[16:16+n])
	flags := unix.O_PATH | unix.O_CLOEXEC
	if isDir {
		flags |= unix.O_DIRECTORY
	}
	first, found, outside := "", false, false
	for _, m := range r.c.mountFDs[[8]byte(key[:8])] {
		fd, err := unix.OpenByHandleAt(m.fd, handle, flags)
		if err != nil {
			continue
		}
		p, ok := r.fdPath(fd)
		if ok && p == "/" && !namesFile(p, fd) {
			ok, outside = false, true
		}
		unix.Close(fd)
		switch {
		case ok && r.c.watchFor(p) != nil:
			return p, true
		case ok && !found:
			first, found = p, true
		}
	}
	if !found && outside {
		return "", true
	}
	return first, found
}

// namesFile reports whether path names fd's file.
func namesFile(path string, fd int) bool {
	var at, of unix.Stat_t
	return unix.Fstat(fd, &of) == nil && unix.Lstat(path, &at) == nil && at.Dev == of.Dev && at.Ino == of.Ino
}

// fdPath reads the path of one of this process's fds.
func (r *eventReader) fdPath(fd int) (string, bool) {
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), r.link)
	if err != nil {
		return "", false
	}
	return string(r.link[:n]), true
}

// process returns the command name and effective uid of pid, best effort:
// a process that exited before any of its events was read is unknown.
func (r *eventReader) process(pid int32) procInfo {
	if p, ok := r.procs[pid]; ok {
		return p
	}
	p, alive := r.readProcess(pid)
	if alive {
		if len(r.known) >= maxRememberedProcs {
			clear(r.known)
		}
		r.known[pid] = p
	} else if known, seen := r.known[pid]; seen {
		p = known
	}
	r.procs[pid] = p
	return p
}

// readProcess reads pid's command name and effective uid from /proc, when
// /proc numbers processes as the events do: the kernel gives an event the
// pid its process has in this process's pid namespace (0 when it has none).
func (r *eventReader) readProcess(pid int32) (procInfo, bool) {
	p := procInfo{comm: r.empty, uid: unknownUID}
	if !r.ownPids {
		return p, false
	}
	dir := strconv.Itoa(int(pid))
	comm, err := os.ReadFile(r.c.proc.Path(dir, "comm"))
	if err != nil {
		return p, false
	}
	p.comm = unique.Make(procfs.DisplayPath(strings.TrimSuffix(string(comm), "\n")))
	if status, err := os.ReadFile(r.c.proc.Path(dir, "status")); err == nil {
		if st, err := procfs.ParseStatus(status); err == nil {
			p.uid = st.EUID
		}
	}
	return p, true
}

// watchFor returns the watched path an event path belongs to, the deepest
// one when they nest, or nil when the path is outside every watched
// subtree or inside an excluded one.
func (c *Collector) watchFor(path string) *watch {
	for _, ex := range c.excludes {
		if under(path, ex) {
			return nil
		}
	}
	var best *watch
	for _, w := range c.watches {
		if w.Strategy != "" && under(path, w.match) && (best == nil || len(w.match) > len(best.match)) {
			best = w
		}
	}
	return best
}

// fsidKey is the 8 bytes of a __kernel_fsid_t as events carry it.
func fsidKey(a, b int32) [8]byte {
	var k [8]byte
	binary.NativeEndian.PutUint32(k[:], uint32(a))
	binary.NativeEndian.PutUint32(k[4:], uint32(b))
	return k
}
