package procfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"

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
	switch {
	case parseErr != nil:
		return ""
	case info.HasGroup:
		return SubsystemFanotify
	case info.firstMarkKind() == InotifyWatch:
		return SubsystemInotify
	}
	return ""
}

// NotifyFD is one fanotify or inotify file descriptor held by a process.
type NotifyFD struct {
	PID, FD   int
	Subsystem string
	// Info is the fdinfo parsed; zero when Err is set. Its text is not
	// kept: a snapshot would hold it for every watch on the host.
	Info Fdinfo
	// Err is the parse error of a text that could not be read.
	Err error
}

// NotifyWalk is what one walk over /proc found.
type NotifyWalk struct {
	// FDs are sorted by pid, then fd. The holders' identities are not
	// read: queries that do not show them (COUNT(*)) need only the pids.
	FDs []NotifyFD
	// TimedOut is set when the context ended the walk before it visited
	// every process: FDs then undercount.
	TimedOut bool
	// Unreadable counts processes whose fds could not be listed (no
	// permission): their groups and instances are missing from FDs.
	Unreadable int
}

// Complete reports whether the walk saw every fd and parsed every fdinfo.
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

// WalkNotifyFDs finds every fanotify and inotify fd on the host, reading
// each fdinfo once, with workers goroutines over the processes. Processes
// and fds that vanish meanwhile are skipped. When ctx ends the walk stops
// early and the result is marked TimedOut rather than failing.
func (fs FS) WalkNotifyFDs(ctx context.Context, workers int) (*NotifyWalk, error) {
	pids, err := fs.Pids()
	if err != nil {
		return nil, err
	}
	walk := &NotifyWalk{}
	childUserNS := fs.inChildUserNS()
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			for pid := range next {
				fds, err := fs.processNotifyFDs(pid, childUserNS)
				mu.Lock()
				switch {
				case errors.Is(err, ErrProcessGone):
				case err != nil:
					walk.Unreadable++
				default:
					walk.FDs = append(walk.FDs, fds...)
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, pid := range pids {
		select {
		case next <- pid:
		case <-ctx.Done():
			walk.TimedOut = true
			break feed
		}
	}
	close(next)
	wg.Wait()
	slices.SortFunc(walk.FDs, func(a, b NotifyFD) int {
		if a.PID != b.PID {
			return a.PID - b.PID
		}
		return a.FD - b.FD
	})
	return walk, nil
}

// initialUserNS is the inode of the initial user namespace (PROC_USER_INIT_INO).
const initialUserNS = 0xEFFFFFFD

// inChildUserNS reports whether this process runs in a user namespace other
// than the initial one, as fs shows it (a fixture tree shows none).
func (fs FS) inChildUserNS() bool {
	ino, err := fs.NamespaceInode(os.Getpid(), "user")
	return err == nil && ino != initialUserNS
}

// processNotifyFDs returns pid's fanotify and inotify fds. childUserNS
// tells that this process runs in a user namespace other than the initial
// one.
func (fs FS) processNotifyFDs(pid int, childUserNS bool) ([]NotifyFD, error) {
	dirPath := fs.Path(strconv.Itoa(pid), "fd")
	dirFD, err := unix.Open(dirPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, pidError(pid, &os.PathError{Op: "open", Path: dirPath, Err: err})
	}
	defer unix.Close(dirFD)
	names, err := dirNames(dirFD)
	if err != nil {
		return nil, pidError(pid, &os.PathError{Op: "getdents", Path: dirPath, Err: err})
	}
	var fds []NotifyFD
	// Longer targets (file paths) come back truncated: none of them can
	// equal the short names notifySubsystem knows.
	link := make([]byte, 64)
	for _, name := range names {
		n, err := unix.Readlinkat(dirFD, name, link)
		if errors.Is(err, unix.EACCES) && childUserNS {
			// The owner may list the fds, but reading them takes ptrace
			// access, which a child user namespace lacks over processes
			// outside it: unreadable, not free of notify fds. (In the
			// initial namespace only a security module refuses root so,
			// and the walk has always skipped what it shields.)
			return nil, pidError(pid, err)
		}
		if err != nil {
			continue // closed since the listing
		}
		sub := notifySubsystem(link[:n])
		if sub == "" {
			continue
		}
		fd, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		parser := newFdinfoParser()
		err = readLines(fs.Path(strconv.Itoa(pid), "fdinfo", name), parser.feed)
		info, parseErr := parser.finish()
		if errors.Is(err, os.ErrNotExist) {
			continue // closed since the readlink
		}
		if err != nil {
			return nil, pidError(pid, err)
		}
		if parseErr != nil {
			err = fmt.Errorf("pid %d fd %d: %w", pid, fd, parseErr)
		}
		switch textSubsystem(info, err) {
		case sub:
		case "":
			// An inotify instance without watches, or a text that did not
			// parse, looks like any fd's: ask the link again.
			if n2, err := unix.Readlinkat(dirFD, name, link); err != nil || notifySubsystem(link[:n2]) != sub {
				continue // the fd number was reused meanwhile
			}
		default:
			continue // reused meanwhile, by the other subsystem
		}
		fds = append(fds, NotifyFD{PID: pid, FD: fd, Subsystem: sub, Info: info, Err: err})
	}
	return fds, nil
}

// dirNames lists the entries of the open directory fd but . and .., with
// plain getdents: an os.File would try to register it with the poller,
// and its Fd would switch it back to blocking mode, three system calls
// more for every process of a walk.
func dirNames(fd int) ([]string, error) {
	bufp := readBuffers.Get().(*[]byte)
	defer readBuffers.Put(bufp)
	var names []string
	for {
		n, err := unix.Getdents(fd, *bufp)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent((*bufp)[:n], -1, names)
	}
}
