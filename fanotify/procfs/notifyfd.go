package procfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// The subsystems, as the tables and the limits (Limit.Subsystem) name them.
const (
	SubsystemFanotify = "fanotify"
	SubsystemInotify  = "inotify"
)

// notifySubsystem tells from an fd's link target whether it is a fanotify
// group or an inotify instance ("inotify" alone on kernels before 2.6.33).
func notifySubsystem(link []byte) string {
	switch string(link) {
	case "anon_inode:[fanotify]":
		return SubsystemFanotify
	case "anon_inode:inotify", "inotify":
		return SubsystemInotify
	}
	return ""
}

// textSubsystem tells which subsystem wrote a parsed fdinfo text, when its
// lines show it: a fanotify group always prints its flags line, an inotify
// instance one line per watch. A text read after the readlink is then known
// to belong to an fd of that subsystem even if the fd number was reused in
// between, which spares the walk a second readlink per fd.
func textSubsystem(info Fdinfo, parseErr error) string {
	if parseErr != nil {
		return ""
	}
	return info.subsystem
}

// Reads is what a walk reads of the fdinfo of each subsystem's fds: every
// mark, only how many there are, or nothing. A fanotify query need not make
// the kernel format every inotify watch on the host (under each instance's
// lock, stalling its owner), and counting marks rather than parsing them
// spares about a tenth of a walk's CPU.
type Reads uint8

// The reads of each subsystem; a read of the marks counts them too.
const (
	FanotifyCounts Reads = 1 << iota // marks counted, the group's flags parsed
	InotifyCounts                    // watches counted
	fanotifyMarks
	inotifyMarks
	Fanotify = FanotifyCounts | fanotifyMarks // every mark parsed
	Inotify  = InotifyCounts | inotifyMarks   // every watch parsed
	AllMarks = Fanotify | Inotify
)

// ReadsOf is the read of subsystem sub: its marks, or only their counts.
func ReadsOf(sub string, marks bool) Reads {
	var r Reads
	switch sub {
	case SubsystemFanotify:
		r = Fanotify
	case SubsystemInotify:
		r = Inotify
	}
	if !marks {
		r &= FanotifyCounts | InotifyCounts
	}
	return r
}

// of tells whether r reads the fdinfo of subsystem sub, and its marks.
func (r Reads) of(sub string) (read, marks bool) {
	all := ReadsOf(sub, true)
	return r&all != 0, r&all == all
}

// NotifyFD is one fanotify or inotify file descriptor held by a process.
type NotifyFD struct {
	PID, FD   int
	Subsystem string
	// Info is the fdinfo parsed, its marks only counted unless the walk
	// read them; zero when Err is set or when the walk did not read it. Its
	// text is not kept: a snapshot would hold it for every watch on the
	// host.
	Info Fdinfo
	// Err is the parse error of a text that could not be read.
	Err error
}

// NotifyWalk is what one walk over /proc found.
type NotifyWalk struct {
	// FDs are the fds whose fdinfo was read, sorted by pid, then fd. The
	// holders' identities are not read: queries that do not show them
	// (COUNT(*)) need only the pids.
	FDs []NotifyFD
	// Unread are the fds found of the subsystems whose fdinfo the walk was
	// not asked to read (see ReadMore), sorted like FDs.
	Unread []NotifyFD
	// Read is what the walk read of each subsystem.
	Read Reads
	// TimedOut is set when the context ended the walk before it visited
	// every process or read every fdinfo: FDs then undercount.
	TimedOut bool
	// Unreadable counts processes whose fds could not be listed (no
	// permission): their groups and instances are missing from FDs.
	Unreadable int
	// budget bounds the marks this walk and those ReadMore makes of it
	// keep.
	budget *markBudget
	// Long are the fds whose fdinfo this walk and ReadMore read with plain
	// system calls.
	Long LongReads
}

// LongReads are the fds whose fdinfo an earlier walk found to have
// longReadMarks marks or more. The kernel prints an fd's fdinfo whole at
// the first read, 45 ms for 10,000 watches here, and a quick system call
// holds its thread's processor meanwhile (see syscalls): a garbage
// collection that starts then stops every goroutine of the process (the
// collector's reader, osqueryd's calls) until the read returns. An fd no
// earlier walk counted is read quickly: a long read happens once, at the
// walk that first finds it.
type LongReads map[FDRef]bool

// FDRef names a process's fd.
type FDRef struct{ PID, FD int }

// longReadMarks is about where a read takes 10 ms, the time after which
// the Go scheduler takes back the processor of a plain system call.
const longReadMarks = 2000

// LongReadsOf returns the fds of w with many marks; nil for a nil w.
func LongReadsOf(w *NotifyWalk) LongReads {
	if w == nil {
		return nil
	}
	long := LongReads{}
	for _, f := range w.FDs {
		if f.Info.MarkCount >= longReadMarks {
			long[FDRef{f.PID, f.FD}] = true
		}
	}
	return long
}

// syscallsFor are the system calls that read the fdinfo of pid's fd.
func (l LongReads) syscallsFor(pid, fd int) syscalls {
	if l[FDRef{pid, fd}] {
		return mayWait
	}
	return quick
}

// Complete reports whether the walk saw every fd and parsed every fdinfo it
// read.
func (w *NotifyWalk) Complete() bool {
	if w.TimedOut || w.Unreadable > 0 {
		return false
	}
	for _, f := range w.FDs {
		if f.Err != nil {
			return false
		}
	}
	return true
}

// WalkNotifyFDs finds every fanotify and inotify fd on the host, and reads
// the fdinfo of those of the subsystems in read as far as it says.
// Processes and fds that vanish meanwhile are skipped. When ctx ends the
// walk stops early and the result is marked TimedOut rather than failing.
//
// The walk visits one process at a time, on the caller's goroutine. The
// kernel takes the superblock's s_umount for every mark it prints, so two
// CPUs reading fdinfo at once bounce that lock between them: a walk over
// four goroutines cost a quarter more CPU than this one where instances hold
// a thousand watches each, and a twentieth more on a thousand instances of
// fifty. (One goroutine fed through a channel cost more still: each process
// handed over woke a thread.)
//
// The walk and those ReadMore makes of it keep about keep marks at most:
// past that, the marks of further fds are counted only (their Info is not
// Kept), and ReadNotifyFD reads them again for a query that wants them.
// They read the fdinfo of the fds in long with plain system calls.
func (fs FS) WalkNotifyFDs(ctx context.Context, read Reads, keep int, long LongReads) (*NotifyWalk, error) {
	pids, err := fs.Pids()
	if err != nil {
		return nil, err
	}
	walk := &NotifyWalk{Read: read, budget: newMarkBudget(keep), Long: long}
	childUserNS := fs.inChildUserNS()
	for _, pid := range pids {
		if ctx.Err() != nil {
			walk.TimedOut = true
			break
		}
		fds, unread, err := fs.processNotifyFDs(pid, childUserNS, walk)
		switch {
		case errors.Is(err, ErrProcessGone):
		case err != nil:
			walk.Unreadable++
		default:
			walk.FDs = append(walk.FDs, fds...)
			walk.Unread = append(walk.Unread, unread...)
		}
	}
	sortFDs(walk.FDs)
	sortFDs(walk.Unread)
	return walk, nil
}

// ReadMore returns w with what read asks of its fds read too, leaving w as
// it was: the fdinfo of unread fds, and again that of fds whose marks w
// only counted. Fds closed or reused since the walk, and those of processes
// that exited, are dropped; a process whose fdinfo can no longer be read
// counts as Unreadable. When ctx ends first, the result is marked TimedOut.
func (fs FS) ReadMore(ctx context.Context, w *NotifyWalk, read Reads) *NotifyWalk {
	out := *w
	out.Read |= read
	out.FDs, out.Unread = make([]NotifyFD, 0, len(w.FDs)+len(w.Unread)), nil
	// more tells an fd of sub whose fdinfo read asks more of than w read.
	more := func(sub string) bool {
		hadRead, hadMarks := w.Read.of(sub)
		wantRead, wantMarks := read.of(sub)
		return wantRead && !hadRead || wantMarks && !hadMarks
	}
	todo := make([]NotifyFD, 0, len(w.Unread))
	for _, f := range w.FDs {
		if more(f.Subsystem) {
			todo = append(todo, f)
		} else {
			out.FDs = append(out.FDs, f)
		}
	}
	for _, f := range w.Unread {
		if more(f.Subsystem) {
			todo = append(todo, f)
		} else {
			out.Unread = append(out.Unread, f)
		}
	}
	unreadable := make(map[int]bool)
	for _, f := range todo {
		if ctx.Err() != nil {
			out.TimedOut = true
			break
		}
		_, marks := out.Read.of(f.Subsystem)
		again, ok, err := fs.readNotifyFD(f.PID, f.FD, f.Subsystem, marks, w.budget, w.Long.syscallsFor(f.PID, f.FD))
		switch {
		case ok:
			out.FDs = append(out.FDs, again)
		case err != nil && !errors.Is(err, ErrProcessGone):
			unreadable[f.PID] = true
		}
	}
	sortFDs(out.FDs)
	out.Unreadable += len(unreadable)
	return &out
}

func sortFDs(fds []NotifyFD) {
	slices.SortFunc(fds, func(a, b NotifyFD) int {
		if a.PID != b.PID {
			return a.PID - b.PID
		}
		return a.FD - b.FD
	})
}

// initialUserNS is the inode of the initial user namespace
// (PROC_USER_INIT_INO).
const initialUserNS = 0xEFFFFFFD

// kthreaddPID is kthreadd's pid in the initial pid namespace, and
// pfKthread the flag of a kernel thread in /proc/PID/stat (PF_KTHREAD).
const (
	kthreaddPID = 2
	pfKthread   = 0x00200000
)

// ListsEveryProcess reports whether fs is the proc of the initial pid
// namespace, the only one that lists kernel threads (pid 2 is kthreadd
// there), whichever pid namespace this process runs in. A proc mounted in
// a child pid namespace (a container without the host's, unshare --pid
// --mount-proc) lists that namespace's processes only. Whose namespace
// pid 1 is in would tell too, but reading that takes ptrace access to pid
// 1, which a security module may refuse even root.
func (fs FS) ListsEveryProcess() bool {
	stat, err := readFile(fs.Path(strconv.Itoa(kthreaddPID), "stat"))
	if err != nil {
		return false
	}
	flags, err := ParseStatFlags(stat)
	return err == nil && flags&pfKthread != 0
}

// inChildUserNS reports whether this process runs in a user namespace other
// than the initial one, as fs shows it (a fixture tree shows none).
func (fs FS) inChildUserNS() bool {
	ino, err := fs.OwnNamespaceInode("user")
	return err == nil && ino != initialUserNS
}

// processNotifyFDs returns pid's fanotify and inotify fds: those of the
// subsystems walk reads with their fdinfo read, the others unread.
// childUserNS tells that this process runs in a user namespace other than
// the initial one.
func (fs FS) processNotifyFDs(pid int, childUserNS bool, walk *NotifyWalk) (fds, unread []NotifyFD, err error) {
	dir := appendPidDir(make([]byte, 0, 64), fs.Root, pid)
	fdDir := append(dir, "fd\x00"...)
	dirFD, err := quick.open(fdDir, unix.O_DIRECTORY)
	if err != nil {
		return nil, nil, pidError(pid, &os.PathError{Op: "open", Path: goPath(fdDir), Err: err})
	}
	defer quick.close(dirFD)
	// Longer targets (file paths) come back truncated: none of them can
	// equal the short names notifySubsystem knows.
	link := make([]byte, 64)
	var failed error // ends the listing
	err = eachName(dirFD, func(name []byte) bool {
		n, err := quick.readlinkat(dirFD, name, link)
		if errors.Is(err, unix.EACCES) && childUserNS {
			// The owner may list the fds, but reading them takes ptrace
			// access, which a child user namespace lacks over processes
			// outside it: unreadable, not free of notify fds. (In the
			// initial namespace only a security module refuses root so,
			// and the walk has always skipped what it shields.)
			failed = pidError(pid, err)
			return false
		}
		if err != nil {
			return true // closed since the listing
		}
		sub := notifySubsystem(link[:n])
		fd, err := parseDecimal(name[:len(name)-1])
		if sub == "" || err != nil {
			return true
		}
		readSub, marks := walk.Read.of(sub)
		if !readSub {
			unread = append(unread, NotifyFD{PID: pid, FD: int(fd), Subsystem: sub})
			return true
		}
		f, ok, err := fs.readNotifyFD(pid, int(fd), sub, marks, walk.budget, walk.Long.syscallsFor(pid, int(fd)))
		if ok {
			fds = append(fds, f)
		}
		failed = err
		return err == nil
	})
	switch {
	case failed != nil:
		return nil, nil, failed
	case err != nil:
		return nil, nil, pidError(pid, &os.PathError{Op: "getdents", Path: goPath(fdDir), Err: err})
	}
	return fds, unread, nil
}

// ReadNotifyFD reads the fdinfo of pid's fd, a walk's fd of subsystem sub,
// again, keeping every mark: for a query that wants the marks of an fd
// whose walk only counted them, many of them. ok is false when the fd was
// closed, or reused by the other subsystem, since; err is as
// readNotifyFD's.
func (fs FS) ReadNotifyFD(pid, fd int, sub string) (f NotifyFD, ok bool, err error) {
	return fs.readNotifyFD(pid, fd, sub, true, nil, mayWait)
}

// readNotifyFD reads the fdinfo of pid's fd, which a readlink showed
// to be of subsystem sub, keeping its marks (within budget, see
// newFdinfoParser) or counting them. ok is false when the fd was closed or
// reused since. err is a failure to read the text (wrapping ErrProcessGone
// when the process exited); a failure to parse it is the result's Err. sys
// makes the reads.
func (fs FS) readNotifyFD(pid, fd int, sub string, marks bool, budget *markBudget, sys syscalls) (f NotifyFD, ok bool, err error) {
	parser := newFdinfoParser(marks, budget)
	defer func() {
		if !ok {
			parser.giveBack() // keeps nothing of a text it drops
		}
	}()
	var path [64]byte
	err = sys.readLinesAt(fs.fdFile(path[:0], pid, "fdinfo", fd), parser.feed)
	info, parseErr := parser.finish()
	if errors.Is(err, os.ErrNotExist) {
		return NotifyFD{}, false, nil // closed since the readlink
	}
	if err != nil {
		return NotifyFD{}, false, pidError(pid, err)
	}
	if parseErr != nil {
		parseErr = fmt.Errorf("pid %d fd %d: %w", pid, fd, parseErr)
	}
	switch textSubsystem(info, parseErr) {
	case sub:
	case "":
		// An inotify instance without watches, or a text that did not
		// parse, looks like any fd's: ask the link again.
		if fs.linkSubsystem(pid, fd) != sub {
			return NotifyFD{}, false, nil // the fd number was reused meanwhile
		}
	default:
		return NotifyFD{}, false, nil // reused meanwhile, by the other subsystem
	}
	return NotifyFD{PID: pid, FD: fd, Subsystem: sub, Info: info, Err: parseErr}, true, nil
}

// linkSubsystem reads the link of pid's fd again: the subsystem it shows
// now, "" for none.
func (fs FS) linkSubsystem(pid, fd int) string {
	link := make([]byte, 64)
	var path [64]byte
	n, err := quick.readlinkat(atFDCWD, fs.fdFile(path[:0], pid, "fd", fd), link)
	if err != nil {
		return ""
	}
	return notifySubsystem(link[:n])
}

// eachName calls f with the name of each entry of the open directory dir
// but . and .., NUL-terminated in a pooled buffer that is reused once f
// returns, until f returns false. It returns the error of a listing. It
// calls getdents itself (quick): an os.File would try to register the
// directory with the poller, and its Fd would switch it back to blocking
// mode, three system calls more for every process of a walk.
func eachName(dir int, f func(name []byte) bool) error {
	// A linux_dirent64: inode (8 bytes), offset (8), record length (2),
	// type (1), then the name and its NUL (and padding).
	const nameOffset = 19
	bufp := readBuffers.Get().(*[]byte)
	defer readBuffers.Put(bufp)
	for {
		n, err := quick.getdents(dir, *bufp)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return err
		}
		for rec := (*bufp)[:n]; len(rec) > 0; {
			size := int(binary.NativeEndian.Uint16(rec[16:]))
			name := rec[nameOffset:size]
			name = name[:bytes.IndexByte(name, 0)+1]
			rec = rec[size:]
			if string(name) == ".\x00" || string(name) == "..\x00" {
				continue
			}
			if !f(name) {
				return nil
			}
		}
	}
}
