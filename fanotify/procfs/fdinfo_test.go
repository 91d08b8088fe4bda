package procfs

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func readFdinfoFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fdinfo", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func handle(typ int32, hex string) Handle { return Handle{Type: typ, Hex: []byte(hex)} }

func TestParseFdinfoFixtures(t *testing.T) {
	rootDev := Dev{Major: 254, Minor: 0}
	tests := []struct {
		file  string
		want  Fdinfo // without its text
		marks []Mark
	}{
		{"fanotify-6.18.txt", Fdinfo{HasGroup: true, GroupFlags: 0x220, EventFlags: 0x8000}, []Mark{
			{Kind: MarkInode, Inode: 0x2e1, Dev: rootDev, Flags: 0x40, Mask: 0, IgnoredMask: 0x20, Handle: handle(1, "e102000000000000")},
			{Kind: MarkFilesystem, Dev: Dev{Major: 0, Minor: 4}, Mask: 0x8},
			{Kind: MarkMount, MountID: 27, Mask: 0x20},
			{Kind: MarkInode, Inode: 0x3c4a3, Dev: rootDev, Mask: 0x2, Handle: handle(1, "a3c4030000000000")},
		}},
		{"fanotify-mntns-6.18.txt", Fdinfo{HasGroup: true, GroupFlags: 0x4000, EventFlags: 0x8000}, []Mark{
			{Kind: MarkMntNS, MntNS: 4026531832, Mask: 0x1000000},
		}},
		{"fanotify-no-marks.txt", Fdinfo{HasGroup: true, GroupFlags: 0x10, EventFlags: 0x8002}, []Mark{}},
		{"inotify-6.18.txt", Fdinfo{}, []Mark{
			{Kind: InotifyWatch, WD: 2, Inode: 0x13, Dev: rootDev, Mask: 0x100, Handle: handle(1, "1300000000000000")},
			{Kind: InotifyWatch, WD: 0x1a, Inode: 0x3c4a3, Dev: rootDev, Mask: 0x80000100, Handle: handle(1, "a3c4030000000000")},
		}},
		{"fanotify-4.4-no-fhandle.txt", Fdinfo{HasGroup: true, GroupFlags: 0, EventFlags: 0x8000}, []Mark{
			{Kind: MarkInode, Inode: 0x1f4, Dev: Dev{Major: 8, Minor: 1}, Mask: 0x3b},
			{Kind: MarkMount, MountID: 43, Mask: 0x10},
		}},
		{"inotify-4.4-no-fhandle.txt", Fdinfo{}, []Mark{
			{Kind: InotifyWatch, WD: 3, Inode: 0x1f4, Dev: Dev{Major: 8, Minor: 1}, Mask: 0xfff},
			{Kind: InotifyWatch, WD: 1, Inode: 2, Dev: Dev{Major: 8, Minor: 1}, Mask: 0x4000100},
		}},
		{"fanotify-future-keys.txt", Fdinfo{HasGroup: true, GroupFlags: 0x200, EventFlags: 0x8000}, []Mark{
			{Kind: MarkInode, Inode: 0xa, Dev: Dev{Major: 3, Minor: 5}, Flags: 0x200, Mask: 2},
			{Kind: MarkFilesystem, Dev: Dev{Major: 3, Minor: 5}, Mask: 8},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseFdinfo(readFdinfoFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if marks := got.Marks(); !reflect.DeepEqual(marks, tt.marks) {
				t.Errorf("marks\ngot  %+v\nwant %+v", marks, tt.marks)
			}
			tt.want.MarkCount, tt.want.text = len(tt.marks), got.text
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseFdinfoMalformed(t *testing.T) {
	tests := map[string]string{
		"malformed-bad-hex.txt":        `ino: "zz" is not hex`,
		"malformed-no-mask.txt":        "mark without mask",
		"malformed-short-handle.txt":   "f_handle has 8 hex digits, fhandle-bytes says 8 bytes",
		"malformed-no-object.txt":      "cannot tell the mark's object",
		"malformed-no-colon.txt":       `field "sdev" is not key:value`,
		"malformed-overflow.txt":       "does not fit in 64 bits",
		"malformed-mntns-hex.txt":      `mnt_ns: "1a" is not decimal`,
		"malformed-group-no-flags.txt": "group line without flags",
		"malformed-mask-too-wide.txt":  "does not fit in 32 bits",
	}
	for file, want := range tests {
		t.Run(file, func(t *testing.T) {
			got, err := ParseFdinfo(readFdinfoFixture(t, file))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want one containing %q", err, want)
			}
			if !reflect.DeepEqual(got, Fdinfo{}) {
				t.Errorf("a failed parse returned %+v", got)
			}
		})
	}
}

func TestHandleBytes(t *testing.T) {
	got, err := handle(1, "e102000000000000").Bytes()
	if err != nil || !reflect.DeepEqual(got, []byte{0xe1, 0x02, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("Bytes() = %x, %v", got, err)
	}
	if _, err := handle(1, "e1z2").Bytes(); err == nil {
		t.Fatal("a handle that is not hex decoded without error")
	}
}

func TestDevString(t *testing.T) {
	if got := devFromKernel(0xfe00003).String(); got != "254:3" {
		t.Fatalf("got %q, want 254:3", got)
	}
}

// FuzzParseFdinfo checks that no input makes the parser panic and that what
// parses keeps the invariants the tables rely on.
func FuzzParseFdinfo(f *testing.F) {
	entries, _ := os.ReadDir(filepath.Join("testdata", "fdinfo"))
	for _, e := range entries {
		f.Add(readFdinfoFixture(f, e.Name()))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ParseFdinfo(data)
		if err != nil {
			return
		}
		marks := info.Marks()
		if len(marks) != info.MarkCount {
			t.Fatalf("MarkCount %d, but %d marks decode", info.MarkCount, len(marks))
		}
		for _, m := range marks {
			if m.Kind < MarkInode || m.Kind > InotifyWatch {
				t.Fatalf("mark of kind %d", m.Kind)
			}
		}
	})
}

// BenchmarkFdinfo compares reading the fdinfo of a real inotify instance
// holding many watches with reading and parsing it; read+parse should stay
// within 1.3x of read.
func BenchmarkFdinfo(b *testing.B) {
	const watches = 5000
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	dir := b.TempDir()
	for i := range watches {
		name := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(name, nil, 0o600); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.InotifyAddWatch(fd, name, unix.IN_MODIFY); err != nil {
			b.Fatal(err)
		}
	}
	path := filepath.Join("/proc/self/fdinfo", strconv.Itoa(fd))
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.ReadFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("parse", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseFdinfo(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("read+parse", func(b *testing.B) {
		for b.Loop() {
			data, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			info, err := ParseFdinfo(data)
			if err != nil || info.MarkCount != watches {
				b.Fatalf("parsed %d watches, err %v", info.MarkCount, err)
			}
		}
	})
}

func TestNotifyLines(t *testing.T) {
	tests := map[string]string{
		"pos:\t0\nflags:\t02000002\nino:\t1038\nfanotify flags:0 event-flags:8000\nfanotify sdev:4 mflags:0 mask:8 ignored_mask:0\n": "fanotify flags:0 event-flags:8000\nfanotify sdev:4 mflags:0 mask:8 ignored_mask:0\n",
		"pos:\t0\nflags:\t00\ninotify wd:1 ino:2 sdev:3 mask:4 ignored_mask:0\n":                                                     "inotify wd:1 ino:2 sdev:3 mask:4 ignored_mask:0\n",
		"pos:\t0\nflags:\t00\nmnt_id:\t17\nino:\t1038\n":                                                                             "",
	}
	for text, want := range tests {
		if got := string(NotifyLines([]byte(text))); got != want {
			t.Errorf("NotifyLines(%q) = %q, want %q", text, got, want)
		}
	}
}
