package procfs

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func readFdinfoFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fdinfo", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func handle(typ int32, hexDigits string) Handle {
	raw, err := hex.DecodeString(hexDigits)
	if err != nil {
		panic(err)
	}
	return Handle{Type: typ, Raw: raw}
}

func TestParseFdinfoFixtures(t *testing.T) {
	rootDev := Dev{Major: 254, Minor: 0}
	tests := []struct {
		file  string
		want  Fdinfo // without its packed marks, sum and subsystem
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
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			got, err := ParseFdinfo(readFdinfoFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if marks := slices.Collect(got.All()); !slices.EqualFunc(marks, tt.marks, func(a, b Mark) bool { return reflect.DeepEqual(a, b) }) {
				t.Errorf("marks\ngot  %+v\nwant %+v", marks, tt.marks)
			}
			tt.want.MarkCount, tt.want.packed = len(tt.marks), got.packed
			tt.want.kept = true
			tt.want.subsystem, _, _ = strings.Cut(tt.file, "-")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "fdinfo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "malformed-") && !covered[e.Name()] {
			t.Errorf("fixture %s has no expected marks", e.Name())
		}
	}
}

// TestPackedMarkKeepsEveryField packs a mark with every field set and
// checks that it decodes whole: a field added to Mark but not packed fails.
func TestPackedMarkKeepsEveryField(t *testing.T) {
	want := Mark{
		Kind: InotifyWatch, Inode: 1 << 40, Dev: Dev{Major: 0xfff, Minor: 0xfffff}, MountID: 3, MntNS: 4026531832,
		WD: 1<<31 - 1, Flags: 6, Mask: 1 << 31, IgnoredMask: 8, Handle: Handle{Type: -1, Raw: []byte{0, 0xff}},
	}
	for _, v := range []reflect.Value{reflect.ValueOf(want), reflect.ValueOf(want.Dev), reflect.ValueOf(want.Handle)} {
		for i := range v.NumField() {
			if v.Field(i).IsZero() {
				t.Fatalf("%s.%s is zero: set it so that its packing is checked", v.Type().Name(), v.Type().Field(i).Name)
			}
		}
	}
	packed := packMarks([]Mark{want})
	var got Mark
	if rest := got.unpack(packed); len(rest) != 0 || !reflect.DeepEqual(got, want) {
		t.Fatalf("unpacked %+v (%d bytes left), want %+v", got, len(rest), want)
	}
}

// packMarks packs marks as ParseFdinfo does.
func packMarks(marks []Mark) []byte {
	var b []byte
	for _, m := range marks {
		b = (&lineFields{m: m, handleHex: hex.AppendEncode(nil, m.Handle.Raw)}).appendPacked(b)
	}
	return b
}

// TestHandleNotHex checks that a handle the kernel would never print (not
// hex) parses as no handle: it could not be opened.
func TestHandleNotHex(t *testing.T) {
	info, err := ParseFdinfo([]byte("inotify wd:1 ino:13 sdev:fe00000 mask:100 ignored_mask:0 fhandle-bytes:2 fhandle-type:1 f_handle:zz00\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mark{{Kind: InotifyWatch, WD: 1, Inode: 0x13, Dev: Dev{Major: 254}, Mask: 0x100, Handle: Handle{Type: 1}}}
	if got := slices.Collect(info.All()); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// parseCounting parses data as a walk that counts marks does.
func parseCounting(data []byte) (Fdinfo, error) {
	p := newFdinfoParser(false, nil)
	p.feed(data)
	return p.finish()
}

// TestCountingFixtures checks that counting marks finds what parsing them
// does, and keeps none of them.
func TestCountingFixtures(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fdinfo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "malformed-") {
			continue
		}
		data := readFdinfoFixture(t, e.Name())
		parsed, err := ParseFdinfo(data)
		if err != nil {
			t.Fatal(err)
		}
		counted, err := parseCounting(data)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if n := len(slices.Collect(counted.All())); n != 0 {
			t.Errorf("%s: counting kept %d marks", e.Name(), n)
		}
		parsed.packed, parsed.kept = nil, parsed.MarkCount == 0 // counting keeps no mark
		if !reflect.DeepEqual(counted, parsed) {
			t.Errorf("%s: counted %+v, parsed %+v", e.Name(), counted, parsed)
		}
	}
}

// Counting the marks of an fdinfo text, what every walk for COUNT(*), the
// limits and the report does for each fd, allocates nothing: the parser
// lives on the caller's stack (a walk of the busy host made 2,000 of them on
// the heap, 1 MB of garbage).
func TestCountingAllocatesNothing(t *testing.T) {
	for _, name := range []string{"inotify-6.18.txt", "fanotify-6.18.txt"} {
		data := readFdinfoFixture(t, name)
		if n := testing.AllocsPerRun(100, func() { parseCounting(data) }); n != 0 {
			t.Errorf("%s: %v allocations a count", name, n)
		}
	}
}

// TestCountingChecksGroupLine checks that a count still reads the group's
// flags, and fails as a parse does on a group line it cannot read.
func TestCountingChecksGroupLine(t *testing.T) {
	data := readFdinfoFixture(t, "malformed-group-no-flags.txt")
	if _, err := parseCounting(data); err == nil || !strings.Contains(err.Error(), "group line without flags") {
		t.Fatalf("error %v, want the group line's", err)
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

func TestDevString(t *testing.T) {
	if got := devFromKernel(0xfe00003).String(); got != "254:3" {
		t.Fatalf("got %q, want 254:3", got)
	}
}

// FuzzParseFdinfo checks that no input makes the parser panic and that what
// parses keeps the invariants the tables rely on: as many marks decode as
// were counted, they pack again to the same bytes, and a count keeps none.
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
		marks := slices.Collect(info.All())
		if len(marks) != info.MarkCount {
			t.Fatalf("MarkCount %d, but %d marks decode", info.MarkCount, len(marks))
		}
		for _, m := range marks {
			if m.Kind < MarkInode || m.Kind > InotifyWatch {
				t.Fatalf("mark of kind %d", m.Kind)
			}
		}
		if again := slices.Collect(info.All()); !reflect.DeepEqual(again, marks) {
			t.Fatalf("marks decode differently the second time:\n%+v\n%+v", marks, again)
		}
		if packed := packMarks(marks); !bytes.Equal(packed, info.packed) {
			t.Fatalf("marks %+v pack to %x, kept %x", marks, packed, info.packed)
		}
		if counted, err := parseCounting(data); err == nil && len(counted.packed) != 0 {
			t.Fatalf("counting kept %x", counted.packed)
		}
	})
}

// BenchmarkFdinfo compares reading the fdinfo of a real inotify instance
// holding many watches with reading and parsing it; read+parse should stay
// within 1.3x of read.
func BenchmarkFdinfo(b *testing.B) {
	const watches = 5000
	fd := manyWatches(b, watches)
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

// The walk feeds a text in pieces that end at line ends; the result is the
// one of the whole text, and an error stops the parse wherever it comes.
func TestParseFdinfoInPieces(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fdinfo"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		text := readFdinfoFixture(t, e.Name())
		want, wantErr := ParseFdinfo(text)
		p := newFdinfoParser(true, nil)
		for line := range bytes.Lines(text) {
			p.feed(line)
		}
		got, err := p.finish()
		if !reflect.DeepEqual(got, want) || (err == nil) != (wantErr == nil) {
			t.Errorf("%s: line by line %+v, %v; whole %+v, %v", e.Name(), got, err, want, wantErr)
		}
	}
}

// parseWithin parses data, fed in the given pieces, keeping marks within
// budget.
func parseWithin(budget *markBudget, pieces ...[]byte) (Fdinfo, error) {
	p := newFdinfoParser(true, budget)
	for _, piece := range pieces {
		p.feed(piece)
	}
	return p.finish()
}

// Parsers sharing a budget keep marks while it lasts; the text that runs it
// out keeps none of its marks and gives back what it took, so its marks are
// counted as a counting read counts them.
func TestParserBudget(t *testing.T) {
	data := readFdinfoFixture(t, "inotify-6.18.txt") // two watches
	all, err := ParseFdinfo(data)
	if err != nil || !all.Kept() || all.MarkCount != 2 {
		t.Fatalf("unbounded parse: %+v, %v", all, err)
	}
	budget := newMarkBudget(3)
	first, err := parseWithin(budget, data)
	if err != nil || !first.Kept() || len(slices.Collect(first.All())) != 2 || budget.left.Load() != 1 {
		t.Fatalf("first text within the budget: %+v, %v; %d left, want 1", first, err, budget.left.Load())
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	second, err := parseWithin(budget, slices.Concat(lines[:5]...), slices.Concat(lines[5:]...))
	if err != nil || second.Kept() || second.MarkCount != 2 || len(slices.Collect(second.All())) != 0 {
		t.Fatalf("second text past the budget: %+v, %v; want 2 marks counted, none kept", second, err)
	}
	if left := budget.left.Load(); left != 1 {
		t.Errorf("%d left after the text that ran out, want the 1 it found", left)
	}
	empty, err := parseWithin(newMarkBudget(0), readFdinfoFixture(t, "fanotify-no-marks.txt"))
	if err != nil || !empty.Kept() {
		t.Errorf("a group without marks: %+v, %v; want its no marks kept", empty, err)
	}
}

// A text that fails to parse after some of its marks were taken from the
// budget gives them back.
func TestParserBudgetAfterError(t *testing.T) {
	budget := newMarkBudget(5)
	_, err := parseWithin(budget, readFdinfoFixture(t, "inotify-6.18.txt"), []byte("inotify wd:zz ino:1 sdev:0 mask:1\n"))
	if err == nil {
		t.Fatal("a malformed watch line parsed")
	}
	if left := budget.left.Load(); left != 5 {
		t.Errorf("%d left after a text that did not parse, want 5", left)
	}
}

// The header's mnt_id is decimal, unlike a mount mark's.
func TestParseFdinfoMountID(t *testing.T) {
	for name, want := range map[string]uint64{"fanotify-6.18.txt": 17, "inotify-4.4-no-fhandle.txt": 9} {
		if got, err := ParseFdinfoMountID(readFdinfoFixture(t, name)); err != nil || got != want {
			t.Errorf("%s: mount ID %d, %v; want %d", name, got, err, want)
		}
	}
	for _, text := range []string{"inotify wd:1 ino:13 sdev mask:100\n", "mnt_id:\t2b\n"} {
		if got, err := ParseFdinfoMountID([]byte(text)); err == nil {
			t.Errorf("%q: mount ID %d, want an error", text, got)
		}
	}
}
