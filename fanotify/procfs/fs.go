// Package procfs reads what the kernel publishes about fanotify and inotify
// in /proc: fdinfo, mountinfo, sysctls and process identity. It only reads;
// parsers take bytes so they can be tested with fixtures from testdata/.
package procfs

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// FS is a proc filesystem mounted at Root ("/proc" on a live host, a
// fixture tree in tests).
type FS struct {
	Root string
}

// DefaultRoot is where the live proc filesystem is mounted.
const DefaultRoot = "/proc"

// NewFS returns an FS rooted at root.
func NewFS(root string) FS { return FS{Root: root} }

// Path joins elem below the root.
func (fs FS) Path(elem ...string) string {
	return filepath.Join(append([]string{fs.Root}, elem...)...)
}

// readBuffers lend readLines a buffer large enough for most /proc files in
// one read.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// maxPooledBuffer keeps a huge mountinfo's buffer from staying in the pool.
const maxPooledBuffer = 1 << 20

// readFile reads a whole file with plain system calls (see readLines).
func readFile(path string) ([]byte, error) { return mayWait.readAll(cPath(path)) }

// readAll reads the whole file at path, NUL-terminated.
func (s syscalls) readAll(path []byte) (data []byte, err error) {
	err = s.readLinesAt(path, func(b []byte) { data = append(data, b...) })
	return data, err
}

// readLines reads a file with plain system calls, open, reads until EOF
// and close, and hands its text to use in pieces that end at a line end (the
// last one may not). os.ReadFile would add an fstat (a /proc file reports
// size 0), an epoll registration attempt and a read per doubling of its
// buffer. The pieces live in a pooled 64 KiB buffer, which use must not
// keep: a file of any size then takes that much memory, unless one of its
// lines is longer (the buffer grows to hold it).
func (s syscalls) readLines(path string, use func([]byte)) error {
	return s.readLinesAt(cPath(path), use)
}

// readLinesAt is readLines of a NUL-terminated path.
func (s syscalls) readLinesAt(path []byte, use func([]byte)) error {
	fd, err := s.open(path, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: goPath(path), Err: err}
	}
	defer s.close(fd)
	bufp := readBuffers.Get().(*[]byte)
	buf := *bufp
	defer func() {
		if len(buf) <= maxPooledBuffer {
			*bufp = buf
			readBuffers.Put(bufp)
		}
	}()
	n := 0 // bytes read and not handed over yet
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := s.read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "read", Path: goPath(path), Err: err}
		}
		if m == 0 {
			break
		}
		n += m
		if end := bytes.LastIndexByte(buf[:n], '\n') + 1; end > 0 {
			use(buf[:end])
			n = copy(buf, buf[end:n])
		}
	}
	if n > 0 {
		use(buf[:n])
	}
	return nil
}
