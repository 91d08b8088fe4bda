package fanotify

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

func TestKernelVersionNormalizesDistributionReleases(t *testing.T) {
	for release, want := range map[string]string{
		"5.15.0-91-generic":        "5.15.0",
		"4.18.0-553.el8_10.x86_64": "4.18.0",
		"6.18.44-fc-v657":          "6.18.44",
		"6.8-rc3":                  "6.8.0",
		"5.10.220":                 "5.10.220",
	} {
		v, err := KernelVersion(release)
		if err != nil || v.String() != want {
			t.Errorf("KernelVersion(%q) = %v, %v; want %s", release, v, err, want)
		}
	}
	for _, bad := range []string{"", "linux", "v6.1", "6"} {
		if _, err := KernelVersion(bad); err == nil {
			t.Errorf("KernelVersion(%q) accepted", bad)
		}
	}
}

// expectedOn labels the named feature for a release without probing.
func expectedOn(t *testing.T, release, name string) bool {
	t.Helper()
	v, _ := KernelVersion(release)
	for _, spec := range featureSpecs {
		if spec.name == name {
			return promises(spec.constraint, v)
		}
	}
	t.Fatalf("no feature %s", name)
	return false
}

func TestFeaturesExpectedFromRelease(t *testing.T) {
	for _, spec := range featureSpecs {
		expectedOn(t, "6.18.0", spec.name) // every constraint parses
	}
	for _, c := range []struct {
		release, feature string
		want             bool
	}{
		{"4.18.0-553.el8_10.x86_64", "FAN_MARK_FILESYSTEM", false},
		{"4.20.0", "FAN_MARK_FILESYSTEM", true},
		{"5.8.0", "FAN_REPORT_NAME", false},
		{"5.9.1-arch1", "FAN_REPORT_NAME", true},
		{"5.10.219", "fs.fanotify sysctls", false},
		{"5.10.220-1-lts", "fs.fanotify sysctls", true}, // backported to 5.10.220
		{"5.12.0", "fs.fanotify sysctls", false},
		{"6.14.2", "FAN_MARK_MNTNS|FAN_MNT_ATTACH|FAN_MNT_DETACH", false}, // 6.15, not the man pages' 6.14
		{"6.15.0", "FAN_MARK_MNTNS|FAN_MNT_ATTACH|FAN_MNT_DETACH", true},
		{"garbage", "FAN_REPORT_FID", false},
	} {
		if got := expectedOn(t, c.release, c.feature); got != c.want {
			t.Errorf("release %s, %s: expected %v, want %v", c.release, c.feature, got, c.want)
		}
	}
}

// Every probe that can decide must agree with the running kernel's
// release (this VM runs a mainline kernel), and probing must close what it
// opens.
func TestFeatureProbesOnThisKernel(t *testing.T) {
	before := openFDs(t)
	release := thisRelease(t)
	features := new(featureCache).get(release)
	if got := openFDs(t); got != before {
		t.Errorf("open fds %d after probing, %d before", got, before)
	}
	if len(features) != len(featureSpecs) {
		t.Fatalf("%d features, want %d", len(features), len(featureSpecs))
	}
	for _, f := range features {
		notProbed := strings.HasPrefix(f.Detail, "not probed")
		switch {
		case notProbed && f.Supported != Unknown:
			t.Errorf("%s: not probed but supported=%v", f.Name, f.Supported)
		case !notProbed && f.Expected && f.Supported != Supported:
			t.Errorf("%s: release %s promises it, probe says %v (%s)", f.Name, release, f.Supported, f.Detail)
		}
	}
}

func TestProbesTellUnsupportedFromUnknown(t *testing.T) {
	// Bits no kernel defines are what an old kernel's EINVAL looks like.
	if s, detail := initProbe(1 << 30)(); s != Unsupported || detail != "fanotify_init: EINVAL" {
		t.Errorf("unknown init flag: %v %q, want unsupported", s, detail)
	}
	if s, _ := markProbe(0, 1<<30, unix.FAN_MODIFY, probeDir)(); s != Unsupported {
		t.Errorf("unknown mark flag: %v, want unsupported", s)
	}
	if s, detail := markProbe(0, 0, unix.FAN_MODIFY, "/nonexistent-probe-path")(); s != Unknown || !strings.Contains(detail, "ENOENT") {
		t.Errorf("missing probe path: %v %q, want unknown with ENOENT", s, detail)
	}
	if s, _ := existsProbe("/proc/sys/fs/fanotify/no_such_sysctl")(); s != Unsupported {
		t.Errorf("missing sysctl: %v, want unsupported", s)
	}
}

// thisRelease is the running kernel's release.
func thisRelease(t *testing.T) string {
	t.Helper()
	release, err := procfs.NewFS(procfs.DefaultRoot).KernelRelease()
	if err != nil {
		t.Fatal(err)
	}
	return release
}

// featureNamed picks the named feature out of features.
func featureNamed(t *testing.T, features []Feature, name string) Feature {
	t.Helper()
	for _, f := range features {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no feature %s", name)
	return Feature{}
}

// A probe the group budget kept from deciding is tried again at the next
// query, and an answer once settled is kept.
func TestFeaturesProbeUndecidedAgain(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		fanotifytest.RunChild(t, nil, "unshare", "-U", "-r")
		return
	}
	setGroupLimit := func(n int) {
		if err := os.WriteFile("/proc/sys/user/max_fanotify_groups", []byte(strconv.Itoa(n)), 0); err != nil {
			t.Fatal(err)
		}
	}
	cache, release := new(featureCache), thisRelease(t)
	for _, step := range []struct {
		groups int
		want   Support
		detail string
	}{
		{0, Unknown, "fanotify_init: EMFILE"},
		{100, Supported, ""},
		{0, Supported, ""},
	} {
		setGroupLimit(step.groups)
		if f := featureNamed(t, cache.get(release), "FAN_REPORT_FID"); f.Supported != step.want || f.Detail != step.detail {
			t.Errorf("max_fanotify_groups=%d: FAN_REPORT_FID %v %q, want %v %q", step.groups, f.Supported, f.Detail, step.want, step.detail)
		}
	}
}

// Queries run concurrently: they share one cache and get the same answers.
func TestFeaturesConcurrentQueries(t *testing.T) {
	cache, release := new(featureCache), thisRelease(t)
	results := make([][]Feature, 4)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = cache.get(release) })
	}
	wg.Wait()
	for _, r := range results[1:] {
		if !slices.Equal(r, results[0]) {
			t.Errorf("concurrent queries disagree:\n%v\n%v", r, results[0])
		}
	}
}

// A user without CAP_SYS_ADMIN may create only groups that report file
// handles (5.13+): the mark features that need none are probed with one.
func TestFeatureProbesUnprivileged(t *testing.T) {
	if !fanotifytest.IsChild(t) {
		nobody := uint32(65534)
		fanotifytest.RunChild(t, &nobody, "env")
		return
	}
	features := new(featureCache).get(thisRelease(t))
	for _, name := range []string{"FAN_OPEN_EXEC", "FAN_MARK_EVICTABLE", "FAN_MARK_IGNORE"} {
		if f := featureNamed(t, features, name); f.Supported != Supported {
			t.Errorf("%s as uid %d: %v (%s), want supported", name, os.Geteuid(), f.Supported, f.Detail)
		}
	}
}
