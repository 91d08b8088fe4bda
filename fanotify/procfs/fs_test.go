package procfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReadFileWholeFileAcrossBufferGrowth(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 64 << 10, 64<<10 + 1, 300 << 10} {
		want := bytes.Repeat([]byte("0123456789abcdef\n"), size/17+1)[:size]
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := readFile(path)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("size %d: read %d bytes, not the file", size, len(got))
		}
	}
}

func TestReadFileResultOutlivesTheBuffer(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("first"), 0o600)
	os.WriteFile(b, []byte("second"), 0o600)
	first, err := readFile(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readFile(b); err != nil {
		t.Fatal(err)
	}
	if string(first) != "first" {
		t.Fatalf("an earlier result changed to %q when the pooled buffer was reused", first)
	}
}

func TestReadFileMissingIsNotExist(t *testing.T) {
	_, err := readFile(filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want one matching os.ErrNotExist", err)
	}
}

func TestReadFileLiveProc(t *testing.T) {
	got, err := readFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := ParseStatus(got); err != nil || st.EUID != uint32(os.Geteuid()) {
		t.Fatalf("status read through readFile: %+v, %v", st, err)
	}
}

// readLines hands a file over in pieces that end at line ends and fit its
// 64 KiB buffer, whatever the file's size; only a longer line grows it. Its
// quick system calls read as its plain ones.
func TestReadLinesPieces(t *testing.T) {
	dir := t.TempDir()
	short := bytes.Repeat([]byte("inotify wd:1 ino:2a sdev:2d mask:2 ignored_mask:0\n"), 20000) // 1 MB
	long := append(bytes.Repeat([]byte("x"), 200<<10), '\n')
	for _, tc := range []struct {
		name     string
		content  []byte
		maxPiece int
	}{
		{"short lines", short, 64 << 10},
		{"a long line", slices.Concat(short[:5000], long, []byte("no newline at the end")), 256 << 10},
	} {
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, tc.content, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, s := range []syscalls{mayWait, quick} {
			var pieces [][]byte
			if err := s.readLines(path, func(p []byte) { pieces = append(pieces, bytes.Clone(p)) }); err != nil {
				t.Fatal(err)
			}
			if got := bytes.Join(pieces, nil); !bytes.Equal(got, tc.content) {
				t.Fatalf("%s (quick %v): pieces make %d bytes, not the file's %d", tc.name, s, len(got), len(tc.content))
			}
			for i, p := range pieces {
				if len(p) > tc.maxPiece || i < len(pieces)-1 && p[len(p)-1] != '\n' {
					t.Errorf("%s (quick %v): piece %d of %d bytes ends with %q", tc.name, s, i, len(p), p[len(p)-1])
				}
			}
		}
	}
}
