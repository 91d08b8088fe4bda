package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrProcessGone reports that a process exited (or became a zombie, which
// has no namespaces left) while it was being read. Walks over every process
// test for it with errors.Is and skip the process.
var ErrProcessGone = errors.New("process exited")

// Identity is who a process is, as the tables show it.
type Identity struct {
	PID int
	// Comm is the command name, ready for display: bytes that are not
	// UTF-8 (a name cut inside a multi-byte character) are written \xNN.
	Comm string
	// EUID is the effective uid as the reader sees it: /proc maps it into
	// the user namespace of the process reading it, not the one of PID
	// (root of a rootless container reads as its host uid).
	EUID uint32
	// UserNS and MntNS are the inodes of /proc/PID/ns/user and ns/mnt.
	UserNS, MntNS uint64
	// Cgroup is the cgroup path, ready for display (see ParseCgroup).
	Cgroup string
}

// Pids lists the processes (thread-group leaders) in ascending order.
func (fs FS) Pids() ([]int, error) { return listIDs(fs.Root) }

// SelfPID is this process's pid as fs numbers it, read from /proc/self:
// os.Getpid() names another process, or none, in a proc of another pid
// namespace than this process's (unshare --pid --fork without
// --mount-proc). An error when the proc does not show this process at all.
func (fs FS) SelfPID() (int, error) {
	link, err := os.Readlink(fs.Path("self"))
	if err != nil {
		return 0, fmt.Errorf("this process is not in the pid namespace of %s: %w", fs.Root, err)
	}
	return strconv.Atoi(link)
}

// OtherThreads lists the threads of process pid besides pid itself: a
// thread may sit in a mount namespace of its own (one that called
// unshare(CLONE_NEWNS)), and /proc/TID/... reads it as /proc/PID/... reads
// the process. The link count of /proc/PID/task is 2 plus the number of
// threads, so that a single-threaded process costs one stat. The error
// wraps ErrProcessGone when the process exited.
func (fs FS) OtherThreads(pid int) ([]int, error) {
	dir := fs.Path(strconv.Itoa(pid), "task")
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, pidError(pid, &os.PathError{Op: "stat", Path: dir, Err: err})
	}
	if st.Nlink <= 3 {
		return nil, nil
	}
	tids, err := listIDs(dir)
	if err != nil {
		return nil, pidError(pid, err)
	}
	return slices.DeleteFunc(tids, func(tid int) bool { return tid == pid }), nil
}

// listIDs lists the numeric entries of a directory (pids, thread ids) in
// increasing order.
func listIDs(path string) ([]int, error) {
	dir, err := quick.open(cPath(path), unix.O_DIRECTORY)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer quick.close(dir)
	var ids []int
	err = eachName(dir, func(name []byte) bool {
		if id, err := parseDecimal(name[:len(name)-1]); err == nil && id > 0 && id <= math.MaxInt32 {
			ids = append(ids, int(id))
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", path, err)
	}
	slices.Sort(ids)
	return ids, nil
}

// ReadOwner sets id's EUID and UserNS, what the process's fanotify groups
// and inotify instances are charged to: a stat and a readlink. The error
// wraps ErrProcessGone when the process exited.
func (fs FS) ReadOwner(id *Identity) error {
	euid, err := fs.effectiveUID(id.PID)
	if err != nil {
		return err
	}
	userNS, err := fs.NamespaceInode(id.PID, "user")
	if err != nil {
		return err
	}
	id.EUID, id.UserNS = euid, userNS
	return nil
}

// ReadDetails sets id's Comm, MntNS and Cgroup, which the tables show but
// no charge needs: two files and a readlink, three times what ReadOwner
// costs. The error wraps ErrProcessGone when the process exited.
func (fs FS) ReadDetails(id *Identity) error {
	comm, err := fs.readPid(quick, id.PID, "comm")
	if err != nil {
		return err
	}
	mntNS, err := fs.NamespaceInode(id.PID, "mnt")
	if err != nil {
		return err
	}
	cgroup, err := fs.readPid(mayWait, id.PID, "cgroup")
	if err != nil {
		return err
	}
	id.Comm = DisplayPath(string(bytes.TrimSuffix(comm, []byte("\n"))))
	id.MntNS, id.Cgroup = mntNS, DisplayPath(ParseCgroup(cgroup))
	return nil
}

// effectiveUID reads pid's effective uid as the owner of /proc/PID: the
// kernel gives that directory the task's effective uid and gid, unlike the
// files in it, which a non-dumpable task hands to root (task_dump_owner in
// fs/proc/base.c; ps reads the euid so). A stat costs a fifteenth of
// formatting /proc/PID/status. The uid is mapped into the reader's user
// namespace, as status's Uid: line is.
func (fs FS) effectiveUID(pid int) (uint32, error) {
	var path [64]byte
	var st unix.Stat_t
	dir := fs.pidFile(path[:0], pid, "")
	if err := quick.stat(dir, &st); err != nil {
		return 0, pidError(pid, &os.PathError{Op: "stat", Path: goPath(dir), Err: err})
	}
	return st.Uid, nil
}

// namespaceKinds are the entries of /proc/PID/ns. An unknown name would
// fail with ENOENT, which must not be mistaken for an exited process.
var namespaceKinds = []string{
	"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children",
	"time", "time_for_children", "user", "uts",
}

// NamespaceInode returns the inode number identifying pid's namespace of
// the given kind ("mnt", "user", "net", ... as named in /proc/PID/ns).
func (fs FS) NamespaceInode(pid int, kind string) (uint64, error) {
	if !slices.Contains(namespaceKinds, kind) {
		return 0, fmt.Errorf("unknown namespace kind %q", kind)
	}
	var path, link [64]byte
	name := fs.pidFile(path[:0], pid, "ns/"+kind)
	n, err := quick.readlinkat(atFDCWD, name, link[:])
	if err != nil {
		return 0, pidError(pid, &os.PathError{Op: "readlink", Path: goPath(name), Err: err})
	}
	ino, err := ParseNamespaceLink(string(link[:n]))
	if err != nil {
		return 0, fmt.Errorf("pid %d ns/%s: %w", pid, kind, err)
	}
	return ino, nil
}

// InOwnPidNamespace reports whether fs is the proc of this process's pid
// namespace: only then are the pids it lists the ones system calls (kcmp)
// take. A proc of an ancestor namespace (unshare --pid --fork without
// --mount-proc) names this process by a pid for each level from its own
// namespace down to this process's (NSpid); before Linux 4.1, which prints
// no NSpid, /proc/self naming os.Getpid() stands in.
func (fs FS) InOwnPidNamespace() bool {
	status, err := readFile(fs.Path("self", "status"))
	if err != nil {
		return false
	}
	pids, err := ParseNSpid(status)
	if err != nil {
		return false
	}
	if pids == nil {
		self, err := fs.SelfPID()
		return err == nil && self == os.Getpid()
	}
	return len(pids) == 1
}

// OwnNamespaceInode is NamespaceInode of this process (see SelfPID).
func (fs FS) OwnNamespaceInode(kind string) (uint64, error) {
	self, err := fs.SelfPID()
	if err != nil {
		return 0, err
	}
	return fs.NamespaceInode(self, kind)
}

// ParseNamespaceLink returns the inode of a namespace link target such as
// "mnt:[4026531841]".
func ParseNamespaceLink(link string) (uint64, error) {
	_, rest, ok := strings.Cut(link, ":[")
	digits, closed := strings.CutSuffix(rest, "]")
	if !ok || !closed {
		return 0, fmt.Errorf("namespace link %q: want kind:[inode]", link)
	}
	ino, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("namespace link %q: %w", link, err)
	}
	return ino, nil
}

// Status holds the fields of /proc/PID/status that the tables use.
type Status struct {
	// UID and EUID are the real and effective uids.
	UID, EUID uint32
}

// ParseStatus parses /proc/PID/status. Its "Uid:" line holds the real,
// effective, saved and filesystem uids.
func ParseStatus(data []byte) (Status, error) {
	for line := range bytes.Lines(data) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		fields := strings.Fields(string(rest))
		if len(fields) < 2 {
			return Status{}, fmt.Errorf("status Uid line %q: want real and effective uid", bytes.TrimSpace(line))
		}
		uid, err := strconv.ParseUint(fields[0], 10, 32)
		if err != nil {
			return Status{}, fmt.Errorf("status Uid line: real uid: %w", err)
		}
		euid, err := strconv.ParseUint(fields[1], 10, 32)
		if err != nil {
			return Status{}, fmt.Errorf("status Uid line: effective uid: %w", err)
		}
		st := Status{UID: uint32(uid), EUID: uint32(euid)}
		return st, nil
	}
	return Status{}, errors.New("no Uid line")
}

// ParseNSpid returns the pids of the "NSpid:" line of /proc/PID/status:
// the process's pid in each pid namespace from the proc's down to its own.
// Nil, without error, when there is no such line (Linux before 4.1).
func ParseNSpid(data []byte) ([]int, error) {
	for line := range bytes.Lines(data) {
		rest, ok := bytes.CutPrefix(line, []byte("NSpid:"))
		if !ok {
			continue
		}
		fields := strings.Fields(string(rest))
		if len(fields) == 0 {
			return nil, errors.New("status NSpid line: no pid")
		}
		pids := make([]int, len(fields))
		for i, f := range fields {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 0 {
				return nil, fmt.Errorf("status NSpid line: pid %q", f)
			}
			pids[i] = pid
		}
		return pids, nil
	}
	return nil, nil
}

// ParseStatFlags returns the flags of /proc/PID/stat, its ninth field.
// The second, the command name in parentheses, may hold spaces and
// parentheses itself: the fields after it start past the last ')'.
func ParseStatFlags(data []byte) (uint32, error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name in parentheses")
	}
	// state, ppid, pgrp, session, tty_nr, tpgid, flags
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 7 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want 7 or more", len(fields))
	}
	flags, err := strconv.ParseUint(fields[6], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("stat flags: %w", err)
	}
	return uint32(flags), nil
}

// ParseCgroup returns the cgroup path from /proc/PID/cgroup: the cgroup v2
// line ("0::/path"). On a v1 or hybrid host the v2 path is absent or "/",
// so the first v1 hierarchy with a path below the root is used instead
// (container runtimes place every controller at the same path). The result
// is "/" when the process sits at the root everywhere, "" when the file
// holds no cgroup line.
func ParseCgroup(data []byte) string {
	var v2, v1 string
	seen := false
	for line := range bytes.Lines(data) {
		// hierarchy-ID:controllers:path; the path itself may hold colons.
		parts := strings.SplitN(strings.TrimSuffix(string(line), "\n"), ":", 3)
		if len(parts) != 3 {
			continue
		}
		seen = true
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case v1 == "" && parts[2] != "/":
			v1 = parts[2]
		}
	}
	switch {
	case v2 != "" && v2 != "/":
		return v2
	case v1 != "":
		return v1
	case seen:
		return "/"
	}
	return ""
}

// readPid reads /proc/PID/name whole, with sys.
func (fs FS) readPid(sys syscalls, pid int, name string) ([]byte, error) {
	var path [64]byte
	data, err := sys.readAll(fs.pidFile(path[:0], pid, name))
	if err != nil {
		return nil, pidError(pid, err)
	}
	return data, nil
}

// pidError wraps ErrProcessGone around the errors an exited process gives:
// ENOENT once it is reaped (or for the namespace links of a zombie) and
// ESRCH while it is being torn down.
func pidError(pid int, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pid %d: %w: %w", pid, ErrProcessGone, err)
	}
	return fmt.Errorf("pid %d: %w", pid, err)
}
