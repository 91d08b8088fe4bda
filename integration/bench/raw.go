package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The raw baselines: the least code that makes the same kernel reads as the
// tables, with the same system calls, and nothing parsed, grouped or
// formatted.

// The link targets of fanotify and inotify fds.
const (
	fanotifyLink = "anon_inode:[fanotify]"
	inotifyLink  = "anon_inode:inotify"
)

// rawReader makes the baselines' system calls in memory it reuses: paths
// are built NUL-terminated in its buffer and handed to the kernel as they
// are, where unix's wrappers would copy each into a fresh allocation. Like
// the project, it makes the calls of the walk over fds raw (procfs's quick
// system calls), the others plain.
type rawReader struct {
	quick     bool   // listing processes or walking fds
	buf       []byte // file contents, read and dropped
	link      []byte
	procDents []byte // the listing of /proc
	dirDents  []byte // the listing of a directory of one process
	path      []byte
	// later, when set, names the fds whose fdinfo a walk leaves for a
	// second pass: their paths go to laterPaths, NUL-terminated one after
	// the other.
	later      string
	laterPaths []byte
}

func newRawReader() *rawReader {
	return &rawReader{
		buf:       make([]byte, 64<<10),
		link:      make([]byte, 64),
		procDents: make([]byte, 64<<10),
		dirDents:  make([]byte, 64<<10),
		path:      make([]byte, 0, 64),
	}
}

// rawWalk lists every fd of every process, readlinks each, and reads the
// fdinfo of each inotify and fanotify fd. It returns the fdinfo bytes read.
func rawWalk(r *rawReader) (int, error) { return rawWalkOf(r, fanotifyLink, inotifyLink) }

// rawWalkOf is rawWalk reading the fdinfo of the fds linked to targets only.
func rawWalkOf(r *rawReader, targets ...string) (int, error) { return r.walk(false, targets) }

// rawWalkWithIdentities is rawWalk also reading what the holder columns of
// the per-mark tables show of each process holding a notify fd: the owner of
// /proc/PID, its user and mount namespace links, comm and cgroup.
func rawWalkWithIdentities(r *rawReader) (int, error) {
	return r.walk(true, []string{fanotifyLink, inotifyLink})
}

// rawWalkInTwoPasses is rawWalk as two queries, one per table, read: a
// walk reading the fdinfo of fanotify fds, then the fdinfo of the inotify
// fds it found, by path.
func rawWalkInTwoPasses(r *rawReader) (int, error) {
	r.later, r.laterPaths = inotifyLink, r.laterPaths[:0]
	defer func() { r.later = "" }()
	total, err := r.walk(false, []string{fanotifyLink})
	for rest := r.laterPaths; len(rest) > 0; {
		end := bytes.IndexByte(rest, 0) + 1
		total += r.readFile(true, rest[:end])
		rest = rest[end:]
	}
	return total, err
}

// walk is the raw walk of the fds linked to targets, reading each holder's
// identity too when identities is set. Like the project's walk, it lists a
// directory with getdents on an fd it opens, and readlinks each fd relative
// to it.
func (r *rawReader) walk(identities bool, targets []string) (int, error) {
	r.quick = true
	defer func() { r.quick = false }()
	total := 0
	err := r.eachEntry(r.setPath("/proc"), r.procDents, func(pid []byte) {
		if pid[0] < '0' || pid[0] > '9' {
			return
		}
		fdDir := r.setPath("/proc/", pid, "/fd")
		dir, err := openat(r.quick, fdDir, unix.O_DIRECTORY)
		if err != nil {
			return // exited, or a kernel thread without files
		}
		defer closeFD(r.quick, dir)
		holder := false
		r.eachName(dir, r.dirDents, func(fd []byte) {
			n, err := readlinkat(r.quick, dir, fd, r.link)
			if err == nil && r.later != "" && string(r.link[:n]) == r.later {
				r.laterPaths = append(r.laterPaths, r.setPath("/proc/", pid, "/fdinfo/", fd)...)
				return
			}
			if err != nil || !isTarget(r.link[:n], targets) {
				return
			}
			total += r.readFile(r.quick, r.setPath("/proc/", pid, "/fdinfo/", fd))
			holder = true
		})
		if holder && identities {
			total += r.readIdentity(pid)
		}
	})
	return total, err
}

// isTarget compares without building a string of link.
func isTarget(link []byte, targets []string) bool {
	for _, t := range targets {
		if string(link) == t {
			return true
		}
	}
	return false
}

// readIdentity makes the reads of a holder's identity, and returns the
// bytes read.
func (r *rawReader) readIdentity(pid []byte) int {
	var st unix.Stat_t
	fstatat(false, r.setPath("/proc/", pid), &st)
	total := 0
	for _, ns := range []string{"/ns/user", "/ns/mnt"} {
		n, _ := readlinkat(false, atFDCWD, r.setPath("/proc/", pid, ns), r.link)
		total += max(n, 0)
	}
	for _, file := range []string{"/comm", "/cgroup"} {
		total += r.readFile(false, r.setPath("/proc/", pid, file))
	}
	return total
}

// rawMountinfo reads the mountinfo of one process or thread in every mount
// namespace (mountNamespaceReaders). It returns the bytes read.
func rawMountinfo(r *rawReader) (int, error) {
	readers, err := r.mountNamespaceReaders()
	total := 0
	for _, id := range readers {
		total += r.readFile(false, r.setPath("/proc/", id, "/mountinfo"))
	}
	return total, err
}

// mountNamespaceReaders finds every mount namespace (readlink
// /proc/PID/ns/mnt, and /proc/TID/ns/mnt of the other threads of processes
// whose task directory counts more than one) and returns the first process
// or thread found in each, by namespace link.
func (r *rawReader) mountNamespaceReaders() (map[string]string, error) {
	r.quick = true
	defer func() { r.quick = false }()
	readers := make(map[string]string)
	see := func(id []byte) {
		n, err := readlinkat(false, atFDCWD, r.setPath("/proc/", id, "/ns/mnt"), r.link)
		if err != nil {
			return
		}
		if _, seen := readers[string(r.link[:n])]; !seen {
			readers[string(r.link[:n])] = string(id[:len(id)-1])
		}
	}
	var threaded []string
	err := r.eachEntry(r.setPath("/proc"), r.procDents, func(pid []byte) {
		if pid[0] < '0' || pid[0] > '9' {
			return
		}
		var st unix.Stat_t
		if fstatat(false, r.setPath("/proc/", pid, "/task"), &st) == nil && st.Nlink > 3 {
			threaded = append(threaded, string(pid))
		}
		see(pid)
	})
	if err != nil {
		return nil, err
	}
	// Processes first: a namespace is read through a process when one is
	// in it, as mount_points does.
	for _, pid := range threaded {
		r.eachEntry(r.setPath("/proc/", []byte(pid), "/task"), r.dirDents, func(tid []byte) {
			if string(tid) != pid {
				see(tid)
			}
		})
	}
	return readers, nil
}

// rawMountinfoAndWalk is what mount_points with its mark counts reads: the
// mountinfo files and every inotify and fanotify fdinfo.
func rawMountinfoAndWalk(r *rawReader) (int, error) {
	n, err := rawMountinfo(r)
	if err != nil {
		return n, err
	}
	m, err := rawWalk(r)
	return n + m, err
}

// mountinfoRead is what rawMountinfo reads.
type mountinfoRead struct {
	namespaces, mounts, bytes int
}

func (m mountinfoRead) String() string {
	return fmt.Sprintf("the mountinfo read: %d mount namespaces, %d mounts, %d bytes (other namespaces on the host add to the bench's)",
		m.namespaces, m.mounts, m.bytes)
}

// mountinfoTotals counts what rawMountinfo reads, outside the measures.
func mountinfoTotals() (mountinfoRead, error) {
	readers, err := newRawReader().mountNamespaceReaders()
	read := mountinfoRead{namespaces: len(readers)}
	for _, id := range readers {
		data, err := os.ReadFile("/proc/" + id + "/mountinfo")
		if err != nil {
			continue // exited
		}
		read.mounts += bytes.Count(data, []byte{'\n'})
		read.bytes += len(data)
	}
	return read, err
}

// setPath builds the NUL-terminated path of its parts, strings or byte
// slices (a name from r.eachName keeps its NUL, dropped here), in r's buffer:
// valid until the next call.
func (r *rawReader) setPath(parts ...any) []byte {
	p := r.path[:0]
	for _, part := range parts {
		switch s := part.(type) {
		case string:
			p = append(p, s...)
		case []byte:
			p = append(p, bytes.TrimSuffix(s, []byte{0})...)
		}
	}
	r.path = append(p, 0)
	return r.path
}

// eachEntry lists the directory at path (see eachName).
func (r *rawReader) eachEntry(path, dents []byte, f func(name []byte)) error {
	fd, err := openat(r.quick, path, unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer closeFD(r.quick, fd)
	return r.eachName(fd, dents, f)
}

// eachName lists the open directory fd with getdents into dents, calling f
// with each name but . and .., NUL-terminated and valid until f returns.
func (r *rawReader) eachName(fd int, dents []byte, f func(name []byte)) error {
	// A linux_dirent64: inode (8 bytes), offset (8), record length (2),
	// type (1), then the name and its NUL.
	const nameOffset = 19
	for {
		n, errno := sys(r.quick, unix.SYS_GETDENTS64, uintptr(fd), uintptr(unsafe.Pointer(&dents[0])), uintptr(len(dents)), 0)
		err := errnoErr(errno)
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		for rec := dents[:n]; len(rec) > 0; {
			size := int(binary.NativeEndian.Uint16(rec[16:]))
			name := rec[nameOffset:size]
			name = name[:bytes.IndexByte(name, 0)+1]
			if string(name) != ".\x00" && string(name) != "..\x00" {
				f(name)
			}
			rec = rec[size:]
		}
	}
}

// readFile reads a whole file in pieces of r.buf's size, as the project
// reads /proc files, raw when quick is set, and returns the bytes read.
func (r *rawReader) readFile(quick bool, path []byte) int {
	fd, err := openat(quick, path, 0)
	if err != nil {
		return 0
	}
	defer closeFD(quick, fd)
	total := 0
	for {
		n, errno := sys(quick, unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)), 0)
		if errno != 0 || n == 0 {
			return total
		}
		total += int(n)
	}
}

// atFDCWD is a variable: the constant, negative, converts to no uintptr.
var atFDCWD = unix.AT_FDCWD

// The system calls on NUL-terminated paths, raw when quick is set.

func openat(quick bool, path []byte, flags int) (int, error) {
	fd, errno := sys(quick, unix.SYS_OPENAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&path[0])),
		uintptr(flags|unix.O_RDONLY|unix.O_CLOEXEC), 0)
	return int(fd), errnoErr(errno)
}

func readlinkat(quick bool, dir int, path, buf []byte) (int, error) {
	n, errno := sys(quick, unix.SYS_READLINKAT, uintptr(dir), uintptr(unsafe.Pointer(&path[0])),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	return int(n), errnoErr(errno)
}

func fstatat(quick bool, path []byte, st *unix.Stat_t) error {
	_, errno := sys(quick, unix.SYS_NEWFSTATAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(&path[0])),
		uintptr(unsafe.Pointer(st)), 0)
	return errnoErr(errno)
}

func closeFD(quick bool, fd int) { sys(quick, unix.SYS_CLOSE, uintptr(fd), 0, 0, 0) }

// sys makes system call trap, raw when quick is set; the memory its
// arguments point to stays put and alive until it returns.
//
//go:uintptrescapes
//go:noinline
func sys(quick bool, trap, a1, a2, a3, a4 uintptr) (uintptr, unix.Errno) {
	if quick {
		r, _, errno := unix.RawSyscall6(trap, a1, a2, a3, a4, 0, 0)
		return r, errno
	}
	r, _, errno := unix.Syscall6(trap, a1, a2, a3, a4, 0, 0)
	return r, errno
}

func errnoErr(errno unix.Errno) error {
	if errno != 0 {
		return errno
	}
	return nil
}

// fdReaderMain is the Go minimal fd-mode reader, run as its own process:
// one fanotify group with a filesystem mark for FAN_CLOSE_WRITE on dir; per
// event a readlink of the event's fd, relative to /proc/self/fd opened
// once, and a close. It prints "ready", then, once it sees the sentinel
// file, "files=N cpu_ns=C": the files under dir it saw and the CPU time it
// spent since it was ready.
func fdReaderMain(dir, sentinel string) error {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fanotify_init: %w", err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, dir); err != nil {
		return fmt.Errorf("fanotify_mark: %w", err)
	}
	fds, err := openat(false, []byte("/proc/self/fd\x00"), unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("/proc/self/fd: %w", err)
	}
	fmt.Println("ready")
	start := selfCPU()
	buf := make([]byte, 256<<10)
	link := make([]byte, unix.PathMax)
	name := make([]byte, 0, 16)
	prefix := []byte(dir + "/")
	files := 0
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		for ev := buf[:n]; len(ev) >= unix.FAN_EVENT_METADATA_LEN; ev = ev[binary.NativeEndian.Uint32(ev):] {
			efd := int32(binary.NativeEndian.Uint32(ev[16:]))
			if efd < 0 {
				continue
			}
			name = append(strconv.AppendInt(name[:0], int64(efd), 10), 0)
			k, err := readlinkat(false, fds, name, link)
			unix.Close(int(efd))
			if err != nil || !bytes.HasPrefix(link[:k], prefix) {
				continue
			}
			if string(link[len(prefix):k]) == sentinel {
				fmt.Printf("files=%d cpu_ns=%d\n", files, selfCPU()-start)
				return nil
			}
			files++
		}
	}
}

// readerResult is what a reader process reported.
type readerResult struct {
	Files int
	CPU   time.Duration
}

// parseReaderResult reads "files=N cpu_ns=C" from a reader's output.
func parseReaderResult(out *bufio.Reader) (readerResult, error) {
	line, err := out.ReadString('\n')
	if err != nil {
		return readerResult{}, fmt.Errorf("reader exited without a result: %w", err)
	}
	var r readerResult
	var ns int64
	if _, err := fmt.Sscanf(strings.TrimSpace(line), "files=%d cpu_ns=%d", &r.Files, &ns); err != nil {
		return readerResult{}, fmt.Errorf("reader said %q: %w", line, err)
	}
	r.CPU = time.Duration(ns)
	return r, nil
}

var errNoCompiler = errors.New("no C compiler")
