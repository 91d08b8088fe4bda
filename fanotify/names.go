package fanotify

import (
	"strconv"
)

// bitName names one flag bit.
type bitName struct {
	bit  uint32
	name string
}

// fanotify_init flags as the fdinfo group line shows them, class bits
// (0x0c) excepted.
var groupFlagBits = []bitName{
	{0x1, "FAN_CLOEXEC"}, {0x2, "FAN_NONBLOCK"},
	{0x10, "FAN_UNLIMITED_QUEUE"}, {0x20, "FAN_UNLIMITED_MARKS"}, {0x40, "FAN_ENABLE_AUDIT"},
	{0x80, "FAN_REPORT_PIDFD"}, {0x100, "FAN_REPORT_TID"}, {0x200, "FAN_REPORT_FID"},
	{0x400, "FAN_REPORT_DIR_FID"}, {0x800, "FAN_REPORT_NAME"}, {0x1000, "FAN_REPORT_TARGET_FID"},
	{0x2000, "FAN_REPORT_FD_ERROR"}, {0x4000, "FAN_REPORT_MNT"},
}

// fanotify event bits of mark masks.
var fanotifyMaskBits = []bitName{
	{0x1, "FAN_ACCESS"}, {0x2, "FAN_MODIFY"}, {0x4, "FAN_ATTRIB"}, {0x8, "FAN_CLOSE_WRITE"},
	{0x10, "FAN_CLOSE_NOWRITE"}, {0x20, "FAN_OPEN"}, {0x40, "FAN_MOVED_FROM"}, {0x80, "FAN_MOVED_TO"},
	{0x100, "FAN_CREATE"}, {0x200, "FAN_DELETE"}, {0x400, "FAN_DELETE_SELF"}, {0x800, "FAN_MOVE_SELF"},
	{0x1000, "FAN_OPEN_EXEC"}, {0x4000, "FAN_Q_OVERFLOW"}, {0x8000, "FAN_FS_ERROR"},
	{0x10000, "FAN_OPEN_PERM"}, {0x20000, "FAN_ACCESS_PERM"}, {0x40000, "FAN_OPEN_EXEC_PERM"},
	{0x100000, "FAN_PRE_ACCESS"}, {0x1000000, "FAN_MNT_ATTACH"}, {0x2000000, "FAN_MNT_DETACH"},
	{0x8000000, "FAN_EVENT_ON_CHILD"}, {0x10000000, "FAN_RENAME"}, {0x40000000, "FAN_ONDIR"},
}

// Mark flags the kernel keeps on a mark and prints as mflags.
var markFlagBits = []bitName{
	{0x40, "FAN_MARK_IGNORED_SURV_MODIFY"}, {0x200, "FAN_MARK_EVICTABLE"}, {0x400, "FAN_MARK_IGNORE"},
}

// inotify watch mask bits, including the flags kept on the watch.
var inotifyMaskBits = []bitName{
	{0x1, "IN_ACCESS"}, {0x2, "IN_MODIFY"}, {0x4, "IN_ATTRIB"}, {0x8, "IN_CLOSE_WRITE"},
	{0x10, "IN_CLOSE_NOWRITE"}, {0x20, "IN_OPEN"}, {0x40, "IN_MOVED_FROM"}, {0x80, "IN_MOVED_TO"},
	{0x100, "IN_CREATE"}, {0x200, "IN_DELETE"}, {0x400, "IN_DELETE_SELF"}, {0x800, "IN_MOVE_SELF"},
	{0x2000, "IN_UNMOUNT"}, {0x4000, "IN_Q_OVERFLOW"}, {0x8000, "IN_IGNORED"},
	{0x1000000, "IN_ONLYDIR"}, {0x2000000, "IN_DONT_FOLLOW"}, {0x4000000, "IN_EXCL_UNLINK"},
	{0x10000000, "IN_MASK_CREATE"}, {0x20000000, "IN_MASK_ADD"}, {0x40000000, "IN_ISDIR"},
	{0x80000000, "IN_ONESHOT"},
}

// bitNames joins the names of the bits set in v with |, after prefix when
// it is not empty; bits without a name appear as one hex number, so nothing
// set goes unseen. One string is built: the per-mark tables call it for
// every row.
func bitNames(prefix string, v uint32, table []bitName) string {
	var buf [256]byte
	b := append(buf[:0], prefix...)
	sep := func() {
		if len(b) > 0 {
			b = append(b, '|')
		}
	}
	for _, n := range table {
		if v&n.bit != 0 {
			sep()
			b = append(b, n.name...)
			v &^= n.bit
		}
	}
	if v != 0 {
		sep()
		b = strconv.AppendUint(append(b, "0x"...), uint64(v), 16)
	}
	return string(b)
}

// Classes of fanotify groups (init flag bits 0x0c).
const (
	ClassNotif      = "notif"
	ClassContent    = "content"
	ClassPreContent = "pre_content"
)

// GroupClass names the class of a group from its init flags.
func GroupClass(flags uint32) string {
	switch flags & 0x0c {
	case 0x04:
		return ClassContent
	case 0x08:
		return ClassPreContent
	case 0x00:
		return ClassNotif
	}
	return "0x" + strconv.FormatUint(uint64(flags&0x0c), 16)
}

var classFlagNames = map[string]string{
	ClassNotif: "FAN_CLASS_NOTIF", ClassContent: "FAN_CLASS_CONTENT", ClassPreContent: "FAN_CLASS_PRE_CONTENT",
}

// GroupFlagNames renders fanotify_init flags, class first:
// "FAN_CLASS_NOTIF|FAN_REPORT_FID".
func GroupFlagNames(flags uint32) string {
	class := GroupClass(flags)
	if name, ok := classFlagNames[class]; ok {
		class = name
	}
	return bitNames(class, flags&^0x0c, groupFlagBits)
}

// FanotifyMaskNames renders a fanotify mark's mask or ignore mask.
func FanotifyMaskNames(mask uint32) string {
	return bitNames("", mask, fanotifyMaskBits)
}

// MarkFlagNames renders a fanotify mark's mflags.
func MarkFlagNames(flags uint32) string {
	return bitNames("", flags, markFlagBits)
}

// InotifyMaskNames renders an inotify watch's mask.
func InotifyMaskNames(mask uint32) string {
	return bitNames("", mask, inotifyMaskBits)
}
