package procfs

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
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
	var buf [24]byte // one allocation: the per-mark tables print a device per row
	b := strconv.AppendUint(buf[:0], uint64(d.Major), 10)
	return string(strconv.AppendUint(append(b, ':'), uint64(d.Minor), 10))
}

// Handle is the file handle fdinfo prints for an inode (fhandle-type and
// f_handle, decoded). Raw references the Fdinfo it came from and must not be
// modified; it is empty when the kernel printed no handle (no
// CONFIG_EXPORTFS, or the filesystem cannot encode one) or printed one that
// is not hex, which could not be opened either.
type Handle struct {
	Type int32
	Raw  []byte
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
// keeps its marks packed (see appendPacked) rather than as text or decoded
// Marks: a host may hold millions of watches, a snapshot holds them all, and
// most queries need only how many there are, which a read that counts them
// (see Reads) keeps alone.
type Fdinfo struct {
	// HasGroup is set when the text holds a fanotify group line.
	HasGroup bool
	// GroupFlags are the fanotify_init flags; EventFlags its event_f_flags.
	GroupFlags, EventFlags uint32
	// MarkCount is the number of marks (fanotify) or watches (inotify).
	MarkCount int
	// packed holds the MarkCount marks in text order; empty when they were
	// only counted.
	packed []byte
	// kept tells that packed holds every mark (see Kept).
	kept bool
	// subsystem is the one the lines show, "" when they show none (see
	// textSubsystem).
	subsystem string
}

// packBuffers lend ParseFdinfo room to pack marks in, so that what it keeps
// is allocated once, at its exact size.
var packBuffers = sync.Pool{New: func() any { return new([]byte) }}

// ParseFdinfo parses the fdinfo text of a fanotify or inotify fd. Lines are
// key:value pairs in any order; unknown keys and lines are skipped so newer
// kernels parse. Every number is hex except mnt_ns, which is decimal. A line
// that cannot be read is an error naming it; the result then holds nothing.
// The result keeps no reference to data.
func ParseFdinfo(data []byte) (Fdinfo, error) {
	p := newFdinfoParser(true, nil)
	p.feed(data)
	return p.finish()
}

// fdinfoParser is ParseFdinfo over a text handed in pieces that end at line
// ends (see readLines), so that the text of an instance with a million
// watches is never held whole. A parser that does not keep marks counts the
// lines the kernel prints for marks without reading their fields (nor
// checking them beyond their first key): a tenth of a walk's CPU went to
// parsing marks that COUNT(*) and the limits never look at.
type fdinfoParser struct {
	info   Fdinfo
	marks  bool       // keep the marks, parsed
	line   lineFields // the line being read
	bufp   *[]byte
	packed []byte // the marks so far, in a pooled buffer
	err    error
	// budget, when set, bounds the marks kept by every parser sharing it;
	// taken is how many of them this one holds.
	budget *markBudget
	taken  int64
}

// newFdinfoParser returns a parser that keeps the marks or counts them.
// One that keeps them within budget (nil: no bound) counts them instead
// from the piece of text that runs it out, and keeps none of the text's.
// It is a value, which stays on its caller's stack: a walk makes one per
// fd.
func newFdinfoParser(marks bool, budget *markBudget) fdinfoParser {
	bufp := packBuffers.Get().(*[]byte)
	p := fdinfoParser{marks: marks, bufp: bufp, packed: (*bufp)[:0], budget: budget}
	return p
}

// markBudget is how many more marks the walks sharing it may keep parsed:
// a snapshot holds every mark it keeps, about 40 bytes a watch, and the
// watches of a host are bounded only by sysctls.
type markBudget struct{ left atomic.Int64 }

func newMarkBudget(n int) *markBudget {
	b := &markBudget{}
	b.left.Store(int64(n))
	return b
}

// feed parses whole lines; after an error it ignores the rest.
func (p *fdinfoParser) feed(lines []byte) {
	for line := range bytes.Lines(lines) {
		if p.err != nil {
			return
		}
		line = trimRightSpace(line)
		rest, sub := cutSubsystem(line)
		if sub == "" {
			continue // the generic header (pos:, flags:, mnt_id:, ino:)
		}
		if p.marks || !startsMark(rest, sub) {
			isMark, err := p.info.parseLine(rest, sub, &p.line)
			if err != nil {
				p.err = fmt.Errorf("fdinfo line %q: %w", line, err)
				return
			}
			if !isMark {
				continue
			}
			if p.marks {
				p.packed = p.line.appendPacked(p.packed)
			}
		}
		p.info.MarkCount++
		p.info.subsystem = sub
	}
	p.takeBudget()
}

// takeBudget takes the marks kept since the last piece from the budget, once
// per piece rather than per mark; when it runs out, the parser gives back
// what it took and counts the rest of the text.
func (p *fdinfoParser) takeBudget() {
	if !p.marks || p.budget == nil {
		return
	}
	n := int64(p.info.MarkCount) - p.taken
	if n == 0 {
		return
	}
	p.taken += n
	if p.budget.left.Add(-n) < 0 {
		p.giveBack()
		p.marks, p.packed = false, p.packed[:0]
	}
}

// giveBack returns to the budget the marks of a text that keeps none.
func (p *fdinfoParser) giveBack() {
	if p.taken > 0 {
		p.budget.left.Add(p.taken)
		p.taken = 0
	}
}

// finish returns what the lines fed hold and gives the packing buffer back.
func (p *fdinfoParser) finish() (Fdinfo, error) {
	defer func() {
		if cap(p.packed) <= maxPooledBuffer {
			*p.bufp = p.packed
			packBuffers.Put(p.bufp)
		}
	}()
	if p.err != nil {
		p.giveBack()
		return Fdinfo{}, p.err
	}
	info := p.info
	info.kept = p.marks || info.MarkCount == 0
	if len(p.packed) > 0 {
		info.packed = bytes.Clone(p.packed)
	}
	return info, nil
}

// Kept tells that All yields every mark: false when they were only counted,
// because the read asked no more or because its budget of kept marks ran
// out (see WalkNotifyFDs).
func (info Fdinfo) Kept() bool { return info.kept }

// All yields the marks (fanotify) or watches (inotify) in text order,
// decoding each as it goes: a loop over a million watches allocates nothing.
// Their handles reference info. It yields nothing when the marks were only
// counted.
func (info Fdinfo) All() iter.Seq[Mark] {
	return func(yield func(Mark) bool) {
		p := info.packed
		if len(p) == 0 {
			return // counted only
		}
		for range info.MarkCount {
			var m Mark
			p = m.unpack(p)
			if !yield(m) {
				return
			}
		}
	}
}

var (
	prefixFanotify = []byte("fanotify ")
	prefixInotify  = []byte("inotify ")
)

// cutSubsystem returns the line after its "inotify " or "fanotify " prefix
// and the subsystem it names; sub is "" for other lines.
func cutSubsystem(line []byte) (rest []byte, sub string) {
	if rest, ok := bytes.CutPrefix(line, prefixInotify); ok {
		return rest, SubsystemInotify
	}
	if rest, ok := bytes.CutPrefix(line, prefixFanotify); ok {
		return rest, SubsystemFanotify
	}
	return nil, ""
}

// startsMark tells a mark line by the key the kernel prints first on it
// (show_mark_fdinfo and its callers in fs/notify/fdinfo.c): the watch
// descriptor of an inotify watch, the object of a fanotify mark. Lines it
// does not recognise are parsed.
func startsMark(rest []byte, sub string) bool {
	key, _, _ := bytes.Cut(rest, []byte{':'})
	if sub == SubsystemInotify {
		return string(key) == "wd"
	}
	switch string(key) {
	case "ino", "sdev", "mnt_id", "mnt_ns":
		return true
	}
	return false
}

// parseLine reads the fields of one line of subsystem sub, after its
// prefix, into f: a group line sets info's group fields, a mark line is
// left in f. isMark tells a mark line.
func (info *Fdinfo) parseLine(rest []byte, sub string, f *lineFields) (isMark bool, err error) {
	if err = f.parse(rest); err != nil {
		return false, err
	}
	if f.seen == 0 {
		return false, nil // a line kind of a newer kernel
	}
	inotify := sub == SubsystemInotify
	if !inotify && f.seen&(seenFlags|seenEventFlags) != 0 {
		if f.seen&seenFlags == 0 {
			return false, errors.New("group line without flags")
		}
		info.HasGroup, info.GroupFlags, info.EventFlags = true, f.groupFlags, f.eventFlags
		info.subsystem = SubsystemFanotify
		return false, nil
	}
	return true, f.checkMark(inotify)
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

// lineFields are the known keys of one fanotify or inotify line. The handle
// is kept as printed (hex) until the mark is packed.
type lineFields struct {
	seen                   int
	m                      Mark
	handleHex              []byte
	handleBytes            uint64
	groupFlags, eventFlags uint32
}

// parse reads a line's fields, space-separated key:value pairs, after its
// "inotify " or "fanotify " prefix. Keys and values are short: scanned byte
// by byte, they cost less than a call to IndexByte each.
func (f *lineFields) parse(rest []byte) error {
	*f = lineFields{}
	for {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			return nil
		}
		k := 0
		for k < len(rest) && rest[k] != ':' && rest[k] != ' ' {
			k++
		}
		if k == 0 || k == len(rest) || rest[k] != ':' {
			field, _, _ := bytes.Cut(rest, []byte{' '})
			return fmt.Errorf("field %q is not key:value", field)
		}
		n, err := f.set(rest[:k], rest[k+1:])
		if err != nil {
			return fmt.Errorf("%s: %w", rest[:k], err)
		}
		rest = rest[k+1+n:]
	}
}

// set reads the value of key at the start of rest, up to the next blank,
// and returns its length. Numbers are parsed in the pass that finds their
// end.
func (f *lineFields) set(key, rest []byte) (n int, err error) {
	var v uint64
	m := &f.m
	switch string(key) {
	case "flags":
		v, n, err = hexValue(rest, 32)
		f.groupFlags, f.seen = uint32(v), f.seen|seenFlags
	case "event-flags":
		v, n, err = hexValue(rest, 32)
		f.eventFlags, f.seen = uint32(v), f.seen|seenEventFlags
	case "ino":
		m.Inode, n, err = hexValue(rest, 64)
		f.seen |= seenIno
	case "sdev":
		v, n, err = hexValue(rest, 32)
		m.Dev, f.seen = devFromKernel(v), f.seen|seenSdev
	case "mnt_id":
		m.MountID, n, err = hexValue(rest, 32)
		f.seen |= seenMntID
	case "mnt_ns":
		n = valueLen(rest)
		m.MntNS, err = parseDecimal(rest[:n])
		f.seen |= seenMntNS
	case "wd":
		v, n, err = hexValue(rest, 31)
		m.WD, f.seen = int32(v), f.seen|seenWD
	case "mflags":
		v, n, err = hexValue(rest, 32)
		m.Flags = uint32(v)
	case "mask":
		v, n, err = hexValue(rest, 32)
		m.Mask, f.seen = uint32(v), f.seen|seenMask
	case "ignored_mask":
		v, n, err = hexValue(rest, 32)
		m.IgnoredMask = uint32(v)
	case "fhandle-bytes":
		f.handleBytes, n, err = hexValue(rest, 16)
		f.seen |= seenHandleBytes
	case "fhandle-type":
		v, n, err = hexValue(rest, 32)
		m.Handle.Type = int32(v)
	case "f_handle":
		n = valueLen(rest)
		f.handleHex = rest[:n]
	default:
		n = valueLen(rest)
	}
	return n, err
}

// valueLen is the length of the value at the start of s: up to the next
// blank or the end.
func valueLen(s []byte) int {
	n := 0
	for n < len(s) && s[n] != ' ' {
		n++
	}
	return n
}

// checkMark checks a mark line and sets its kind.
func (f *lineFields) checkMark(inotify bool) error {
	if f.seen&seenMask == 0 {
		return errors.New("mark without mask")
	}
	if f.seen&seenHandleBytes != 0 && uint64(len(f.handleHex)) != 2*f.handleBytes {
		return fmt.Errorf("f_handle has %d hex digits, fhandle-bytes says %d bytes", len(f.handleHex), f.handleBytes)
	}
	f.m.Kind = markKind(f.seen, inotify)
	if f.m.Kind == 0 {
		return errors.New("cannot tell the mark's object (no ino, sdev, mnt_id, mnt_ns or wd)")
	}
	return nil
}

// numbers are a mark's numeric fields, in packing order: those most marks
// carry first, so that their presence bits and the handle's fit one byte.
func (m *Mark) numbers() [packedNumbers]uint64 {
	return [packedNumbers]uint64{
		m.Inode, uint64(m.Dev.Major), uint64(m.Dev.Minor), uint64(m.WD), uint64(m.Mask),
		uint64(uint32(m.Handle.Type)), m.MountID, m.MntNS, uint64(m.Flags), uint64(m.IgnoredMask),
	}
}

// setNumbers is the inverse of numbers.
func (m *Mark) setNumbers(v [packedNumbers]uint64) {
	m.Inode, m.Dev.Major, m.Dev.Minor, m.WD, m.Mask = v[0], uint32(v[1]), uint32(v[2]), int32(v[3]), uint32(v[4])
	m.Handle.Type, m.MountID, m.MntNS, m.Flags, m.IgnoredMask = int32(uint32(v[5])), v[6], v[7], uint32(v[8]), uint32(v[9])
}

// packedNumbers is how many numbers a mark has. In the presence bits of a
// packed mark, bit 0 tells a handle and bit i+1 number i.
const (
	packedNumbers = 10
	packedHandle  = 1
)

// appendPacked appends the mark in about a quarter of its text's size: its
// kind byte, a uvarint whose bits tell which numbers are not zero, those
// numbers as uvarints, then, when there is one, the handle's length as a
// uvarint and its bytes.
func (f *lineFields) appendPacked(b []byte) []byte {
	nums := f.m.numbers()
	present := uint64(0)
	for i, v := range nums {
		if v != 0 {
			present |= 1 << (i + 1)
		}
	}
	var room [128]byte // MAX_HANDLE_SZ: no handle the kernel prints is longer
	handle, err := hex.AppendDecode(room[:0], f.handleHex)
	hasHandle := err == nil && len(handle) > 0
	if hasHandle {
		present |= packedHandle
	}
	b = append(b, byte(f.m.Kind))
	b = binary.AppendUvarint(b, present)
	for _, v := range nums {
		if v != 0 {
			b = binary.AppendUvarint(b, v)
		}
	}
	if hasHandle {
		b = binary.AppendUvarint(b, uint64(len(handle)))
		b = append(b, handle...)
	}
	return b
}

// unpack decodes a mark that appendPacked wrote at the start of p, and
// returns what follows it.
func (m *Mark) unpack(p []byte) []byte {
	m.Kind, p = MarkKind(p[0]), p[1:]
	present, p := uvarint(p)
	var nums [packedNumbers]uint64
	for i := range nums {
		if present&(1<<(i+1)) != 0 {
			nums[i], p = uvarint(p)
		}
	}
	m.setNumbers(nums)
	if present&packedHandle != 0 {
		var n uint64
		n, p = uvarint(p)
		m.Handle.Raw, p = p[:n:n], p[n:]
	}
	return p
}

// uvarint reads a uvarint that appendPacked wrote.
func uvarint(p []byte) (uint64, []byte) {
	v, n := binary.Uvarint(p)
	return v, p[n:]
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

// trimRightSpace drops the line end and any blanks before it, byte by
// byte: bytes.TrimRight would build a set of the four bytes for every line.
func trimRightSpace(line []byte) []byte {
	for n := len(line); n > 0; n-- {
		switch line[n-1] {
		case ' ', '\t', '\r', '\n':
		default:
			return line[:n]
		}
	}
	return nil
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

// hexValue reads the hex number of at most bits bits at the start of s, up
// to the next blank or the end, without allocating; n is its length.
func hexValue(s []byte, bits int) (v uint64, n int, err error) {
	for ; n < len(s) && s[n] != ' '; n++ {
		d := hexDigits[s[n]]
		if d == notHex {
			return 0, 0, fmt.Errorf("%q is not hex", s[:valueLen(s)])
		}
		if v>>(bits-4) != 0 {
			return 0, 0, fmt.Errorf("%q does not fit in %d bits", s[:valueLen(s)], bits)
		}
		v = v<<4 | uint64(d)
	}
	if n == 0 {
		return 0, 0, errors.New("empty number")
	}
	return v, n, nil
}

// hexDigits maps each byte to its hex value, notHex when it is none.
var hexDigits = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			t[c] = byte(c - 'A' + 10)
		default:
			t[c] = notHex
		}
	}
	return t
}()

const notHex = 0xff

// ParseFdinfoMountID reads the mount ID of the header every fd's fdinfo
// starts with ("mnt_id:\t43", decimal like mountinfo's, since Linux 3.15):
// the mount the open file is on.
func ParseFdinfoMountID(data []byte) (uint64, error) {
	for line := range bytes.Lines(data) {
		if value, ok := bytes.CutPrefix(line, []byte("mnt_id:")); ok {
			return parseDecimal(bytes.TrimSpace(value))
		}
	}
	return 0, errors.New("fdinfo has no mnt_id line (Linux before 3.15)")
}

// OwnFDMountID reads the mount ID of this process's fd from its fdinfo,
// through /proc/self: in a proc of another pid namespace, this process's
// pid is some other process's, or none.
func (fs FS) OwnFDMountID(fd int) (uint64, error) {
	data, err := readFile(fs.Path("self", "fdinfo", strconv.Itoa(fd)))
	if err != nil {
		return 0, err
	}
	return ParseFdinfoMountID(data)
}
