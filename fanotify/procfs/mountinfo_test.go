package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

func mountinfoFixture(t *testing.T, name string) []*mountinfo.Info {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "mountinfo", name))
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := ParseMountinfo(data)
	if err != nil {
		t.Fatal(err)
	}
	return mounts
}

func checkMounts(t *testing.T, got, want []*mountinfo.Info) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d mounts, want %d", len(got), len(want))
	}
	for i := range want {
		if *got[i] != *want[i] {
			t.Errorf("mount %d:\n got %+v\nwant %+v", i, *got[i], *want[i])
		}
	}
}

// The hostile fixture is this kernel's output for mount points named with a
// space, a tab, a newline and a byte that is not UTF-8, a source with a
// space and a backslash, and every propagation state.
func TestParseMountinfoHostile(t *testing.T) {
	const source = `src with space\back`
	bind := func(id int, path, optional string) *mountinfo.Info {
		return &mountinfo.Info{
			ID: id, Parent: 63, Major: 0, Minor: 39, Root: "/src dir", Mountpoint: path,
			Options: "rw,relatime", Optional: optional, FSType: "tmpfs", Source: source, VFSOptions: "rw",
		}
	}
	checkMounts(t, mountinfoFixture(t, "hostile"), []*mountinfo.Info{
		{ID: 43, Parent: 42, Major: 254, Minor: 0, Root: "/", Mountpoint: "/", Options: "rw,relatime",
			FSType: "ext4", Source: "/dev/vda", VFSOptions: "rw,discard,resv_strict,resuid=65534,resgid=65534"},
		{ID: 63, Parent: 43, Major: 0, Minor: 39, Root: "/", Mountpoint: "/tmp/mi-fixture",
			Options: "rw,relatime", FSType: "tmpfs", Source: source, VFSOptions: "rw"},
		bind(64, "/tmp/mi-fixture/a b", ""),
		bind(65, "/tmp/mi-fixture/t\tab", ""),
		bind(66, "/tmp/mi-fixture/n\nl", ""),
		bind(67, "/tmp/mi-fixture/bad\xff", ""),
		bind(68, "/tmp/mi-fixture/shared", "shared:1"),
		bind(69, "/tmp/mi-fixture/slave", "master:1"),
		bind(70, "/tmp/mi-fixture/both", "shared:2 master:1"),
		bind(71, "/tmp/mi-fixture/unb", "unbindable"),
	})
}

func TestParseMountinfoOptional(t *testing.T) {
	checkMounts(t, mountinfoFixture(t, "optional"), []*mountinfo.Info{
		{ID: 1, Parent: 1, Major: 0, Minor: 2, Root: "/", Mountpoint: "/", Options: "rw",
			FSType: "rootfs", Source: "none", VFSOptions: "rw"},
		{ID: 2, Parent: 1, Major: 0, Minor: 3, Root: "/", Mountpoint: "/x", Options: "rw",
			Optional: "shared:3 master:1 propagate_from:4", FSType: "tmpfs", Source: "none", VFSOptions: "rw"},
		{ID: 3, Parent: 1, Major: 0, Minor: 4, Root: "/", Mountpoint: "/y", Options: "rw",
			FSType: "fuse.sshfs", Source: "user@host:/a b", VFSOptions: "rw,user_id=0"},
	})
}

func TestParseMountinfoErrors(t *testing.T) {
	for _, name := range []string{"no_separator", "short"} {
		data, err := os.ReadFile(filepath.Join("testdata", "mountinfo", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseMountinfo(data); err == nil {
			t.Errorf("%s: ParseMountinfo succeeded", name)
		}
	}
}

func TestMountsLive(t *testing.T) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, "/", 0, unix.STATX_MNT_ID, &stx); err != nil {
		t.Fatal(err)
	}
	mounts, err := NewFS(DefaultRoot).Mounts(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if m.Mountpoint == "/" && uint64(m.ID) == stx.Mnt_id {
			return
		}
	}
	t.Errorf("Mounts(self) lacks the root mount %d", stx.Mnt_id)
}

func TestMountsExited(t *testing.T) {
	fsys := NewFS(DefaultRoot)
	checkGoneOnExit(t, "Mounts", func(pid int) error {
		_, err := fsys.Mounts(pid)
		return err
	})
}

// An overlayfs with hundreds of layers writes a mountinfo line far over
// 64 KiB, where mountinfo.GetMountsFromReader stops with an error.
func TestParseMountinfoLongLine(t *testing.T) {
	var layers []string
	for i := range 700 {
		layers = append(layers, fmt.Sprintf("/var/lib/containers/storage/overlay/%064d/diff", i))
	}
	super := "rw,lowerdir=" + strings.Join(layers, ":") + ",upperdir=/u,workdir=/w"
	data := "43 42 254:0 / / rw,relatime - ext4 /dev/vda rw\n" +
		"90 43 0:50 / /var/lib/containers/x/merged rw,relatime - overlay overlay " + super + "\n" +
		"91 43 0:51 / /tmp rw - tmpfs tmpfs rw\n"
	if len(super) <= 64<<10 {
		t.Fatalf("the fixture line is only %d bytes", len(super))
	}
	if _, err := mountinfo.GetMountsFromReader(strings.NewReader(data), nil); err == nil {
		t.Log("mountinfo.GetMountsFromReader now reads long lines too")
	}
	checkMounts(t, mustParseMountinfo(t, data), []*mountinfo.Info{
		{ID: 43, Parent: 42, Major: 254, Minor: 0, Root: "/", Mountpoint: "/", Options: "rw,relatime",
			FSType: "ext4", Source: "/dev/vda", VFSOptions: "rw"},
		{ID: 90, Parent: 43, Major: 0, Minor: 50, Root: "/", Mountpoint: "/var/lib/containers/x/merged",
			Options: "rw,relatime", FSType: "overlay", Source: "overlay", VFSOptions: super},
		{ID: 91, Parent: 43, Major: 0, Minor: 51, Root: "/", Mountpoint: "/tmp", Options: "rw",
			FSType: "tmpfs", Source: "tmpfs", VFSOptions: "rw"},
	})
}

func mustParseMountinfo(t *testing.T, data string) []*mountinfo.Info {
	t.Helper()
	mounts, err := ParseMountinfo([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	return mounts
}

// FuzzParseMountinfo checks that no input panics the parser and that, on
// lines short enough for it, the parser agrees with moby's mountinfo
// parser: the same mounts, or an error from both.
func FuzzParseMountinfo(f *testing.F) {
	for _, name := range []string{"hostile", "optional", "no_separator", "short"} {
		data, err := os.ReadFile(filepath.Join("testdata", "mountinfo", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseMountinfo(data)
		for line := range bytes.Lines(data) {
			if len(line) >= bufio.MaxScanTokenSize {
				return
			}
		}
		want, wantErr := mountinfo.GetMountsFromReader(bytes.NewReader(data), nil)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("error %v, moby's parser says %v", err, wantErr)
		}
		if err == nil {
			checkMounts(t, got, want)
		}
	})
}

// bindMountinfo is the mountinfo text of n bind mounts below /, one line
// each, about 130 bytes a line.
func bindMountinfo(n int) []byte {
	var b bytes.Buffer
	b.WriteString("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n")
	for i := range n {
		fmt.Fprintf(&b, "%d 22 0:40 /src /var/lib/kubelet/pods/%08d/volumes rw,relatime shared:%d - tmpfs tmpfs rw,size=65536k\n", 100+i, i, 2+i)
	}
	return b.Bytes()
}

// mountinfoOf42 is a proc tree whose process 42 has data as its mountinfo.
func mountinfoOf42(tb testing.TB, data []byte) FS {
	tb.Helper()
	root := tb.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "42"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "42", "mountinfo"), data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return NewFS(root)
}

// Mounts parses the text as it reads it, in pieces of 64 KiB that end at
// line ends: a table many pieces long loses, splits and repeats no line.
func TestMountsReadInPieces(t *testing.T) {
	data := bindMountinfo(3000) // over 350 KiB
	got, err := mountinfoOf42(t, data).Mounts(42)
	if err != nil {
		t.Fatal(err)
	}
	checkMounts(t, got, mustParseMountinfo(t, string(data)))
	if last := got[len(got)-1]; last.ID != 3099 || last.Mountpoint != "/var/lib/kubelet/pods/00002999/volumes" {
		t.Errorf("last mount %+v, want ID 3099 on the 3000th pod's volumes", *last)
	}
}

// A line that does not parse, however far into the text, fails the whole
// table rather than leaving the mounts before it.
func TestMountsRejectsALateBadLine(t *testing.T) {
	data := append(bindMountinfo(3000), "no separator here\n"...)
	mounts, err := mountinfoOf42(t, data).Mounts(42)
	if err == nil || !strings.Contains(err.Error(), "pid 42") || mounts != nil {
		t.Fatalf("Mounts = %d mounts, %v; want none and an error naming pid 42", len(mounts), err)
	}
}

// BenchmarkMounts reads a namespace of 10,000 bind mounts, as
// mount_points does.
func BenchmarkMounts(b *testing.B) {
	fsys := mountinfoOf42(b, bindMountinfo(10000))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fsys.Mounts(42); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReachable finds what is in reach among 10,000 mounts on one
// parent, at one depth and at two: a fraction of reading them
// (BenchmarkMounts).
func BenchmarkReachable(b *testing.B) {
	mixed := bindMountinfo(5000)
	for i := range 5000 {
		mixed = fmt.Appendf(mixed, "%d 22 0:41 / /run/netns/cni-%08d rw - nsfs nsfs rw\n", 20000+i, i)
	}
	for _, fixture := range []struct {
		name string
		text []byte
	}{{"one_depth", bindMountinfo(10000)}, {"two_depths", mixed}} {
		mounts, err := ParseMountinfo(fixture.text)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fixture.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Reachable(mounts)
			}
		})
	}
}

// Mounts covered by another mount, and everything below them, are out of
// reach; the layouts are this kernel's own (see the test of mount_points'
// reachable column).
func TestReachable(t *testing.T) {
	for _, tc := range []struct {
		name, mountinfo string
		unreached       []int
	}{
		{"mounted twice, as a host's /dev/shm", `
27 1 254:0 / / rw - ext4 /dev/vda rw
24 27 0:6 / /dev rw - devtmpfs devtmpfs rw
25 24 0:23 / /dev/shm rw - tmpfs tmpfs rw
30 25 0:27 / /dev/shm rw - tmpfs tmpfs rw
31 30 0:28 / /dev/shm/x rw - tmpfs tmpfs rw
`, []int{25}},
		{"siblings mounted later above", `
46 45 254:0 / / rw - ext4 /dev/vda rw
67 46 0:41 / /tmp/x/a/b rw - tmpfs A rw
71 67 0:45 / /tmp/x/a/b/c rw - tmpfs C rw
68 46 0:42 / /tmp/x/a rw - tmpfs B rw
69 46 0:43 / /tmp/x rw - tmpfs X1 rw
70 69 0:44 / /tmp/x rw - tmpfs X2 rw
72 70 0:46 / /tmp/x/a rw - tmpfs D rw
73 46 0:47 / /tmpx/y rw - tmpfs E rw
`, []int{67, 71, 68, 69}},
		{"stacked on the root: the top reached through /..", `
46 45 254:0 / / rw - ext4 /dev/vda rw
48 46 0:21 / /proc rw - proc proc rw
66 46 0:40 / / rw - tmpfs over rw
74 66 0:48 / /in rw - tmpfs F rw
`, nil},
		{"three stacked on the root", `
46 45 254:0 / / rw - ext4 /dev/vda rw
48 46 0:21 / /proc rw - proc proc rw
66 46 0:40 / / rw - tmpfs middle rw
74 66 0:48 / /in rw - tmpfs F rw
67 66 0:49 / / rw - tmpfs top rw
75 67 0:50 / /in rw - tmpfs G rw
`, []int{66, 74}},
		{"chrooted: mount points whose parents are out of sight", `
80 50 0:50 / /x rw - tmpfs G rw
81 50 0:51 / /x/y rw - tmpfs H rw
82 80 0:52 / /x/z rw - tmpfs I rw
`, []int{81}},
		{"a loop of parents", `
1 1 0:2 / / rw - rootfs none rw
2 1 0:3 / /x rw - tmpfs none rw
`, nil},
	} {
		mounts, err := ParseMountinfo([]byte(strings.TrimPrefix(tc.mountinfo, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		var unreached []int
		for i, ok := range Reachable(mounts) {
			if !ok {
				unreached = append(unreached, mounts[i].ID)
			}
		}
		if fmt.Sprint(unreached) != fmt.Sprint(tc.unreached) {
			t.Errorf("%s: unreached %v, want %v", tc.name, unreached, tc.unreached)
		}
	}
}
