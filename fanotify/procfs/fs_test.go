package procfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
