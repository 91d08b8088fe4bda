package procfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFixtureSysctls(t *testing.T, name string) Sysctls {
	t.Helper()
	s, err := NewFS(filepath.Join("testdata", "sysctl", name)).ReadSysctls()
	if err != nil {
		t.Fatalf("ReadSysctls(%s): %v", name, err)
	}
	return s
}

func TestReadSysctlsModernKernel(t *testing.T) {
	s := readFixtureSysctls(t, "6.18-initial")
	if !s.FanotifySysctls {
		t.Error("FanotifySysctls = false on a tree with sys/fs/fanotify")
	}
	want := map[Limit]LimitValue{
		InotifyInstances:     {InotifyInstances, ScopeUser, 128, SourceSysctl},
		InotifyWatches:       {InotifyWatches, ScopeUser, 192536, SourceSysctl},
		InotifyQueuedEvents:  {InotifyQueuedEvents, ScopeQueue, 16384, SourceSysctl},
		FanotifyGroups:       {FanotifyGroups, ScopeUser, 128, SourceSysctl},
		FanotifyMarks:        {FanotifyMarks, ScopeUser, 205039, SourceSysctl},
		FanotifyQueuedEvents: {FanotifyQueuedEvents, ScopeQueue, 16384, SourceSysctl},
	}
	if len(s.Initial) != len(AllLimits) {
		t.Fatalf("Initial has %d limits, want %d", len(s.Initial), len(AllLimits))
	}
	for i, got := range s.Initial {
		if got.Limit != AllLimits[i] {
			t.Errorf("Initial[%d] is %v, want AllLimits order (%v)", i, got.Limit, AllLimits[i])
		}
		if got != want[got.Limit] {
			t.Errorf("%s = %+v, want %+v", got.Sysctl(), got, want[got.Limit])
		}
	}
	if s.Own[FanotifyMarks] != 205039 || s.Own[InotifyInstances] != 128 || len(s.Own) != 4 {
		t.Errorf("Own = %v, want the four /proc/sys/user values", s.Own)
	}
}

func TestReadSysctlsChildNamespaceSeesOwnUserLimits(t *testing.T) {
	s := readFixtureSysctls(t, "6.18-child")
	// fs.* always shows the initial namespace, user.* the one we run in.
	if v, _ := s.Lookup(FanotifyMarks); v.Value != 205039 {
		t.Errorf("fs.fanotify.max_user_marks = %d, want the initial namespace's 205039", v.Value)
	}
	wantOwn := map[Limit]int64{InotifyInstances: 10, InotifyWatches: 2147483647, FanotifyGroups: 5, FanotifyMarks: 20}
	for l, want := range wantOwn {
		if s.Own[l] != want {
			t.Errorf("Own[%s] = %d, want %d", l.UserSysctl(), s.Own[l], want)
		}
	}
}

func TestReadSysctlsKernelWithoutFanotifySysctls(t *testing.T) {
	for _, name := range []string{"5.10-old", "4.18-rhel", "3.10-rhel7"} {
		t.Run(name, func(t *testing.T) {
			s := readFixtureSysctls(t, name)
			if s.FanotifySysctls {
				t.Error("FanotifySysctls = true without sys/fs/fanotify")
			}
			// One more than nominal gets through: 129 groups, 8193 marks.
			want := map[Limit]LimitValue{
				FanotifyGroups:       {FanotifyGroups, ScopeUser, 129, SourceKernelDefault},
				FanotifyMarks:        {FanotifyMarks, ScopeGroup, 8193, SourceKernelDefault},
				FanotifyQueuedEvents: {FanotifyQueuedEvents, ScopeQueue, 16384, SourceKernelDefault},
			}
			for l, w := range want {
				if got, ok := s.Lookup(l); !ok || got != w {
					t.Errorf("%s = %+v, want %+v", l.Sysctl(), got, w)
				}
			}
			if v, _ := s.Lookup(InotifyWatches); v.Source != SourceSysctl {
				t.Errorf("inotify watches source = %q, want sysctl", v.Source)
			}
			if _, ok := s.Own[FanotifyMarks]; ok {
				t.Error("Own has a fanotify value on a kernel without user.max_fanotify_marks")
			}
		})
	}
}

func TestReadSysctlsErrors(t *testing.T) {
	_, err := NewFS(filepath.Join("testdata", "sysctl", "corrupt")).ReadSysctls()
	if err == nil || !strings.Contains(err.Error(), "max_user_marks") || !strings.Contains(err.Error(), `"lots"`) {
		t.Errorf("corrupt value: err = %v, want one naming the file and the value", err)
	}
	if _, err := NewFS(t.TempDir()).ReadSysctls(); err == nil {
		t.Error("empty tree: no error")
	}
}

func TestParseSysctlInt(t *testing.T) {
	for in, want := range map[string]int64{"128\n": 128, " 2147483647 ": 2147483647, "-1": -1} {
		if got, err := ParseSysctlInt([]byte(in)); err != nil || got != want {
			t.Errorf("ParseSysctlInt(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "12 34", "0x10", "9223372036854775808"} {
		if _, err := ParseSysctlInt([]byte(bad)); err == nil {
			t.Errorf("ParseSysctlInt(%q): no error", bad)
		}
	}
}

func TestKernelRelease(t *testing.T) {
	got, err := NewFS(filepath.Join("testdata", "sysctl", "4.18-rhel")).KernelRelease()
	if err != nil || got != "4.18.0-553.el8_10.x86_64" {
		t.Errorf("KernelRelease = %q, %v", got, err)
	}
}

// The live kernel: values match the files and the initial namespace's
// user.* equals fs.* (they are the same kernel variable).
func TestReadSysctlsLive(t *testing.T) {
	s, err := NewFS(DefaultRoot).ReadSysctls()
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Readlink("/proc/self/ns/user")
	for _, v := range s.Initial {
		if v.Value <= 0 {
			t.Errorf("%s = %d", v.Sysctl(), v.Value)
		}
		own, ok := s.Own[v.Limit]
		if ok && self == "user:[4026531837]" && v.Source == SourceSysctl && own != v.Value {
			t.Errorf("initial namespace: %s = %d but %s = %d", v.Sysctl(), v.Value, v.UserSysctl(), own)
		}
	}
}
