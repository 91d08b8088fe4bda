package procfs

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
)

// MarkKind tells what object a fanotify mark or inotify watch is attached to.
type MarkKind uint8

// The kinds of fdinfo mark lines.
const (
	MarkInode      MarkKind = iota + 1 // fanotify inode mark
	MarkMount                          // fanotify mount mark (FAN_MARK_MOUNT)
	MarkFilesystem                     // fanotify superblock mark (FAN_MARK_FILESYSTEM)
	MarkMntNS                          // fanotify mount-namespace mark (FAN_MARK_MNTNS)
	InotifyWatch                       // inotify watch (always on an inode)
)

// String is the name the tables show.
func (k MarkKind) String() string {
	switch k {
	case MarkInode:
		return "inode"
	case MarkMount:
		return "mount"
	case MarkFilesystem:
		return "filesystem"
	case MarkMntNS:
		return "mntns"
	case InotifyWatch:
		return "inotify"
	}
	return "unknown"
}

// Dev is a device number split the way mountinfo shows it ("maj:min").
type Dev struct{ Major, Minor uint32 }

// devFromKernel splits the kernel-internal dev_t that fdinfo prints as sdev.
// It is not stat()'s st_dev encoding.
func devFromKernel(sdev uint64) Dev {
	return Dev{Major: uint32(sdev >> 20), Minor: uint32(sdev & 0xfffff)}
}

func (d Dev) String() string {
	return strconv.FormatUint(uint64(d.Major), 10) + ":" + strconv.FormatUint(uint64(d.Minor), 10)
}

// Handle is the file handle fdinfo prints for an inode (fhandle-type and
// f_handle). Hex references the parsed text, so that parsing copies nothing;
// it is empty when the kernel printed no handle (no CONFIG_EXPORTFS, or the
// filesystem cannot encode one).
type Handle struct {
	Type int32
	Hex  []byte
}

// Bytes decodes the handle.
func (h Handle) Bytes() ([]byte, error) {
	return hex.DecodeString(string(h.Hex))
}

// Mark is one mark line of a fanotify fdinfo or one watch line of an inotify
// fdinfo. Fields that the line kind does not carry are zero.
type Mark struct {
	Kind        MarkKind
	Inode       uint64 // MarkInode, InotifyWatch
	Dev         Dev    // MarkInode, MarkFilesystem, InotifyWatch
	MountID     uint64 // MarkMount: mountinfo's (decimal) mount ID
	MntNS       uint64 // MarkMntNS: the mount namespace's inode
	WD          int32  // InotifyWatch: the watch descriptor
	Flags       uint32 // fanotify mflags (FAN_MARK_* bits kept on the mark)
	Mask        uint32
	IgnoredMask uint32
	Handle      Handle
}

// Fdinfo is a parsed /proc/PID/fdinfo/FD of a fanotify or inotify fd. It
// keeps the text rather than the decoded marks: a host may hold millions of
// watches, and most queries need only how many there are.
type Fdinfo struct {
	// HasGroup is set when the text holds a fanotify group line.
	HasGroup bool
	// GroupFlags are the fanotify_init flags; EventFlags its event_f_flags.
	GroupFlags, EventFlags uint32
	// MarkCount is the number of marks (fanotify) or watches (inotify).
	MarkCount int
	text      []byte
}

// ParseFdinfo parses the fdinfo text of a fanotify or inotify fd. Lines are
// key:value pairs in any order; unknown keys and lines are skipped so newer
// kernels parse. Every number is hex except mnt_ns, which is decimal. A line
// that cannot be read is an error naming it; the result then holds nothing.
// Every line is checked here; Marks decodes them again when asked.
func ParseFdinfo(data []byte) (Fdinfo, error) {
	info := Fdinfo{text: data}
	for line := range bytes.Lines(data) {
		isMark, err := info.parseLine(bytes.TrimRight(line, " \t\r\n"), nil)
		if err != nil {
			return Fdinfo{}, fmt.Errorf("fdinfo line %q: %w", line, err)
		}
		if isMark {
			info.MarkCount++
		}
	}
	return info, nil
}

// Marks decodes the marks (fanotify) or watches (inotify), in text order.
// Their handles point into the text.
func (info Fdinfo) Marks() []Mark {
	marks := make([]Mark, 0, info.MarkCount)
	var m Mark
	for line := range bytes.Lines(info.text) {
		if isMark, _ := info.parseLine(bytes.TrimRight(line, " \t\r\n"), &m); isMark {
			marks = append(marks, m)
		}
	}
	return marks
}

// NotifyLines returns the part of an fdinfo text that describes the group
// and its marks, without the header (pos:, flags:, ...). The header differs
// between fds of one open file: flags: shows each fd's close-on-exec flag.
func NotifyLines(text []byte) []byte {
	for i := 0; i < len(text); {
		if bytes.HasPrefix(text[i:], prefixFanotify) || bytes.HasPrefix(text[i:], prefixInotify) {
			return text[i:]
		}
		nl := bytes.IndexByte(text[i:], '\n')
		if nl < 0 {
			break
		}
		i += nl + 1
	}
	return nil
}

var (
	prefixFanotify = []byte("fanotify ")
	prefixInotify  = []byte("inotify ")
)

// parseLine reads one line: a group line sets info's group fields, a mark
// line is decoded into *m when m is not nil. isMark tells a mark line.
func (info *Fdinfo) parseLine(line []byte, m *Mark) (isMark bool, err error) {
	rest, inotify := bytes.CutPrefix(line, prefixInotify)
	if !inotify {
		var ok bool
		if rest, ok = bytes.CutPrefix(line, prefixFanotify); !ok {
			return false, nil // the generic header (pos:, flags:, mnt_id:, ino:) or a future line
		}
	}
	f, err := parseFields(rest)
	if err != nil {
		return false, err
	}
	if f.seen == 0 {
		return false, nil // a line kind of a newer kernel
	}
	if !inotify && f.seen&(seenFlags|seenEventFlags) != 0 {
		if f.seen&seenFlags == 0 {
			return false, errors.New("group line without flags")
		}
		info.HasGroup, info.GroupFlags, info.EventFlags = true, f.groupFlags, f.eventFlags
		return false, nil
	}
	mark, err := f.mark(inotify)
	if err != nil {
		return false, err
	}
	if m != nil {
		*m = mark
	}
	return true, nil
}

// Keys seen on a line, to tell its kind whatever the key order.
const (
	seenIno = 1 << iota
	seenSdev
	seenMntID
	seenMntNS
	seenWD
	seenMask
	seenHandleBytes
	seenFlags
	seenEventFlags
)

// lineFields are the known keys of one fanotify or inotify line.
type lineFields struct {
	seen                   int
	m                      Mark
	handleBytes            uint64
	groupFlags, eventFlags uint32
}

func parseFields(rest []byte) (lineFields, error) {
	var f lineFields
	for len(rest) > 0 {
		var key, val []byte
		var err error
		if key, val, rest, err = nextField(rest); err != nil {
			return f, err
		}
		if err = f.set(key, val); err != nil {
			return f, fmt.Errorf("%s: %w", key, err)
		}
	}
	return f, nil
}

func (f *lineFields) set(key, val []byte) error {
	var err error
	var v uint64
	m := &f.m
	switch string(key) {
	case "flags":
		v, err = parseHex(val, 32)
		f.groupFlags, f.seen = uint32(v), f.seen|seenFlags
	case "event-flags":
		v, err = parseHex(val, 32)
		f.eventFlags, f.seen = uint32(v), f.seen|seenEventFlags
	case "ino":
		m.Inode, err = parseHex(val, 64)
		f.seen |= seenIno
	case "sdev":
		v, err = parseHex(val, 32)
		m.Dev, f.seen = devFromKernel(v), f.seen|seenSdev
	case "mnt_id":
		m.MountID, err = parseHex(val, 32)
		f.seen |= seenMntID
	case "mnt_ns":
		m.MntNS, err = parseDecimal(val)
		f.seen |= seenMntNS
	case "wd":
		v, err = parseHex(val, 31)
		m.WD, f.seen = int32(v), f.seen|seenWD
	case "mflags":
		v, err = parseHex(val, 32)
		m.Flags = uint32(v)
	case "mask":
		v, err = parseHex(val, 32)
		m.Mask, f.seen = uint32(v), f.seen|seenMask
	case "ignored_mask":
		v, err = parseHex(val, 32)
		m.IgnoredMask = uint32(v)
	case "fhandle-bytes":
		f.handleBytes, err = parseHex(val, 16)
		f.seen |= seenHandleBytes
	case "fhandle-type":
		v, err = parseHex(val, 32)
		m.Handle.Type = int32(v)
	case "f_handle":
		m.Handle.Hex = val
	}
	return err
}

func (f *lineFields) mark(inotify bool) (Mark, error) {
	if f.seen&seenMask == 0 {
		return Mark{}, errors.New("mark without mask")
	}
	if f.seen&seenHandleBytes != 0 && uint64(len(f.m.Handle.Hex)) != 2*f.handleBytes {
		return Mark{}, fmt.Errorf("f_handle has %d hex digits, fhandle-bytes says %d bytes", len(f.m.Handle.Hex), f.handleBytes)
	}
	f.m.Kind = markKind(f.seen, inotify)
	if f.m.Kind == 0 {
		return Mark{}, errors.New("cannot tell the mark's object (no ino, sdev, mnt_id, mnt_ns or wd)")
	}
	return f.m, nil
}

func markKind(seen int, inotify bool) MarkKind {
	switch {
	case inotify:
		if seen&(seenWD|seenIno) == seenWD|seenIno {
			return InotifyWatch
		}
	case seen&seenIno != 0:
		return MarkInode
	case seen&seenMntID != 0:
		return MarkMount
	case seen&seenMntNS != 0:
		return MarkMntNS
	case seen&seenSdev != 0:
		return MarkFilesystem
	}
	return 0
}

// nextField splits the first space-separated key:value pair off a line.
// The key is scanned byte by byte (it is short), the value, which may be a
// long file handle, with IndexByte.
func nextField(line []byte) (key, val, rest []byte, err error) {
	line = bytes.TrimLeft(line, " ")
	k := 0
	for k < len(line) && line[k] != ':' && line[k] != ' ' {
		k++
	}
	if k == 0 || k == len(line) || line[k] != ':' {
		field, _, _ := bytes.Cut(line, []byte{' '})
		return nil, nil, nil, fmt.Errorf("field %q is not key:value", field)
	}
	key, val = line[:k], line[k+1:]
	if end := bytes.IndexByte(val, ' '); end >= 0 {
		val, rest = val[:end], val[end+1:]
	}
	return key, val, rest, nil
}

// parseDecimal reads an unsigned decimal number without allocating.
func parseDecimal(s []byte) (uint64, error) {
	if len(s) == 0 {
		return 0, errors.New("empty number")
	}
	var v uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not decimal", s)
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, fmt.Errorf("%q does not fit in 64 bits", s)
		}
		v = v*10 + d
	}
	return v, nil
}

// parseHex reads a hex number of at most bits bits without allocating.
func parseHex(s []byte, bits int) (uint64, error) {
	if len(s) == 0 {
		return 0, errors.New("empty number")
	}
	var v uint64
	for _, c := range s {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("%q is not hex", s)
		}
		if v>>(bits-4) != 0 {
			return 0, fmt.Errorf("%q does not fit in %d bits", s, bits)
		}
		v = v<<4 | uint64(d)
	}
	return v, nil
}
