package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The raw baselines: the least code that makes the same kernel reads as the
// tables, with nothing parsed, grouped or formatted.

// The link targets of fanotify and inotify fds.
const (
	fanotifyLink = "anon_inode:[fanotify]"
	inotifyLink  = "anon_inode:inotify"
)

// rawWalk lists every fd of every process, readlinks each, and reads the
// fdinfo of each inotify and fanotify fd. It returns the fdinfo bytes read.
func rawWalk(buf []byte) (int, error) { return rawWalkOf(buf, fanotifyLink, inotifyLink) }

// rawWalkOf is rawWalk reading the fdinfo of the fds linked to targets only.
func rawWalkOf(buf []byte, targets ...string) (int, error) { return walkReading(buf, false, targets) }

// rawWalkWithIdentities is rawWalk also reading what the holder columns of
// the per-mark tables show of each process holding a notify fd: the owner of
// /proc/PID, its user and mount namespace links, comm and cgroup.
func rawWalkWithIdentities(buf []byte) (int, error) {
	return walkReading(buf, true, []string{fanotifyLink, inotifyLink})
}

// walkReading is the raw walk of the fds linked to targets, reading each
// holder's identity too when identities is set.
func walkReading(buf []byte, identities bool, targets []string) (int, error) {
	pids, err := listDir("/proc")
	if err != nil {
		return 0, err
	}
	link := make([]byte, 64)
	total := 0
	for _, pid := range pids {
		if pid[0] < '0' || pid[0] > '9' {
			continue
		}
		fdDir := "/proc/" + pid + "/fd"
		fds, err := listDir(fdDir)
		if err != nil {
			continue // exited, or a kernel thread without files
		}
		holder := false
		for _, fd := range fds {
			n, err := unix.Readlink(fdDir+"/"+fd, link)
			if err != nil {
				continue
			}
			if !slices.Contains(targets, string(link[:n])) {
				continue
			}
			n, _ = readAll("/proc/"+pid+"/fdinfo/"+fd, &buf)
			total += n
			holder = true
		}
		if holder && identities {
			total += readIdentity("/proc/"+pid, link, &buf)
		}
	}
	return total, nil
}

// readIdentity makes the reads of a holder's identity, and returns the
// bytes read.
func readIdentity(dir string, link []byte, buf *[]byte) int {
	var st unix.Stat_t
	unix.Stat(dir, &st)
	total := 0
	for _, ns := range []string{"/ns/user", "/ns/mnt"} {
		n, _ := unix.Readlink(dir+ns, link)
		total += max(n, 0)
	}
	for _, file := range []string{"/comm", "/cgroup"} {
		n, _ := readAll(dir+file, buf)
		total += n
	}
	return total
}

// rawMountinfo reads the mountinfo of one process or thread in every mount
// namespace (mountNamespaceReaders). It returns the bytes read.
func rawMountinfo(buf []byte) (int, error) {
	readers, err := mountNamespaceReaders()
	total := 0
	for _, id := range readers {
		n, _ := readAll("/proc/"+id+"/mountinfo", &buf)
		total += n
	}
	return total, err
}

// mountNamespaceReaders finds every mount namespace (readlink
// /proc/PID/ns/mnt, and /proc/TID/ns/mnt of the other threads of processes
// whose task directory counts more than one) and returns the first process
// or thread found in each, by namespace link.
func mountNamespaceReaders() (map[string]string, error) {
	names, err := listDir("/proc")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, pid := range names {
		if pid[0] >= '0' && pid[0] <= '9' {
			ids = append(ids, pid)
		}
	}
	for _, pid := range ids {
		var st unix.Stat_t
		if unix.Stat("/proc/"+pid+"/task", &st) != nil || st.Nlink <= 3 {
			continue
		}
		tids, _ := listDir("/proc/" + pid + "/task")
		for _, tid := range tids {
			if tid != pid {
				ids = append(ids, tid)
			}
		}
	}
	link := make([]byte, 64)
	readers := make(map[string]string)
	for _, id := range ids {
		n, err := unix.Readlink("/proc/"+id+"/ns/mnt", link)
		if err != nil {
			continue
		}
		if _, seen := readers[string(link[:n])]; !seen {
			readers[string(link[:n])] = id
		}
	}
	return readers, nil
}

// rawMountinfoAndWalk is what mount_points with its mark counts reads: the
// mountinfo files and every inotify and fanotify fdinfo.
func rawMountinfoAndWalk(buf []byte) (int, error) {
	n, err := rawMountinfo(buf)
	if err != nil {
		return n, err
	}
	m, err := rawWalk(buf)
	return n + m, err
}

// listDir returns the names in a directory.
func listDir(path string) ([]string, error) {
	d, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}

// readAll reads a whole file into *buf, growing it as needed.
func readAll(path string, buf *[]byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(*buf) {
			*buf = append(*buf, make([]byte, len(*buf))...)
		}
		m, err := unix.Read(fd, (*buf)[n:])
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, nil
		}
		n += m
	}
}

// fdReaderMain is the Go minimal fd-mode reader, run as its own process:
// one fanotify group with a filesystem mark for FAN_CLOSE_WRITE on dir; per
// event a readlink of the event's fd and a close. It prints "ready", then,
// once it sees the sentinel file, "files=N cpu_ns=C": the files under dir
// it saw and the CPU time it spent since it was ready.
func fdReaderMain(dir, sentinel string) error {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fanotify_init: %w", err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, dir); err != nil {
		return fmt.Errorf("fanotify_mark: %w", err)
	}
	fmt.Println("ready")
	start := selfCPU()
	buf := make([]byte, 256<<10)
	link := make([]byte, unix.PathMax)
	prefix := []byte(dir + "/")
	files := 0
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		for ev := buf[:n]; len(ev) >= unix.FAN_EVENT_METADATA_LEN; ev = ev[binary.NativeEndian.Uint32(ev):] {
			efd := int(int32(binary.NativeEndian.Uint32(ev[16:])))
			if efd < 0 {
				continue
			}
			k, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(efd), link)
			unix.Close(efd)
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
