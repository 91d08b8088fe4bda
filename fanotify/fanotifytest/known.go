package fanotifytest

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Known describes the objects HoldKnownObjects creates:
//   - group A (FAN_REPORT_FID) with 2 inode marks (one added twice with
//     different masks, costing 1), an ignore-only inode mark, a mount mark
//     and a filesystem mark on "/": 5 marks, held by PID1 as fds 3 and 4
//     (dup) and by PID2 as fd 3 (fork);
//   - group B (FAN_UNLIMITED_MARKS) with 1 inode mark, PID2 fd 5;
//   - group C (FAN_REPORT_MNT) with 1 mount-namespace mark, PID2 fd 6;
//   - group D (FAN_REPORT_FID) without marks, PID1 fd 6;
//   - instance I1 with 2 watches (Dir, and Files[0] added twice), PID1 fd 5;
//   - instance I2 without watches, PID2 fd 4.
//
// Charged: 4 groups, 6 marks (B's is free), 2 instances, 2 watches.
type Known struct {
	PID1, PID2 int
	Dir        string
	// Files[0..2] carry A's inode marks, Files[3] B's.
	Files []string
}

// HoldKnownObjects creates the Known objects, held by two processes
// running with euid and egid uid, so that every count charged to uid comes
// from them.
func HoldKnownObjects(t testing.TB, uid uint32) Known {
	t.Helper()
	k := Known{Dir: t.TempDir()}
	for i := range 4 {
		p := filepath.Join(k.Dir, "f"+strconv.Itoa(i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		k.Files = append(k.Files, p)
	}
	a := Fanotify(t, unix.FAN_REPORT_FID)
	Mark(t, a, 0, unix.FAN_MODIFY, k.Files[0])
	Mark(t, a, 0, unix.FAN_CLOSE_WRITE, k.Files[0]) // a mask update: the same mark
	Mark(t, a, 0, unix.FAN_MODIFY, k.Files[1])
	Mark(t, a, unix.FAN_MARK_IGNORED_MASK|unix.FAN_MARK_IGNORED_SURV_MODIFY, unix.FAN_OPEN, k.Files[2])
	Mark(t, a, unix.FAN_MARK_MOUNT, unix.FAN_CLOSE_WRITE, "/")
	Mark(t, a, unix.FAN_MARK_FILESYSTEM, unix.FAN_CLOSE_WRITE, "/")
	b := Fanotify(t, unix.FAN_UNLIMITED_MARKS|unix.FAN_REPORT_FID)
	Mark(t, b, 0, unix.FAN_MODIFY, k.Files[3])
	c := Fanotify(t, unix.FAN_REPORT_MNT)
	Mark(t, c, unix.FAN_MARK_MNTNS, unix.FAN_MNT_ATTACH, "/proc/self/ns/mnt")
	d := Fanotify(t, unix.FAN_REPORT_FID)
	i1 := Inotify(t, k.Dir, k.Files[0], k.Files[0])
	i2 := Inotify(t)

	cred := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	k.PID1 = Hold(t, cred, a, a, i1, d)
	k.PID2 = Hold(t, cred, a, i2, b, c)
	Close(a, b, c, d, i1, i2)
	return k
}
