// Package fanotify makes the fanotify system calls of fanotify.ext: feature
// probing and the event collector. Everything else reads /proc (procfs).
package fanotify

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sync"

	"github.com/Masterminds/semver/v3"
	"golang.org/x/sys/unix"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// Support is what probing found out about one feature.
type Support int8

// Probe outcomes. Unknown means the probe could not decide (no privilege,
// the probe filesystem refused, or the feature cannot be probed safely).
const (
	Unknown Support = iota
	Supported
	Unsupported
)

// Feature is one fanotify capability with the release that introduced it.
type Feature struct {
	Name string
	// Since is the first mainline release with the feature.
	Since string
	// Expected tells whether the running release promises the feature: it
	// is at or after Since, or a stable release known to have it backported.
	// Distributions backport more, so only Supported is authoritative.
	Expected  bool
	Supported Support
	// Detail explains an Unknown or Unsupported outcome, or says what an
	// inferred one is inferred from.
	Detail string
}

// featureSpec says how to label and probe one feature.
type featureSpec struct {
	name       string
	since      string
	constraint string // semver constraint on the normalized release
	probe      func() (Support, string)
}

// probeDir is where mark probes put their short-lived marks: it exists on
// every system, and a probe group is closed right after its one mark.
const probeDir = "/"

// Init flags every probe group and the collector use: notification class
// only, never a class that makes writers wait for this process.
const baseInitFlags = unix.FAN_CLASS_NOTIF | unix.FAN_CLOEXEC | unix.FAN_NONBLOCK

const eventFileFlags = unix.O_RDONLY | unix.O_LARGEFILE | unix.O_CLOEXEC

var featureSpecs = []featureSpec{
	{"FAN_MARK_FILESYSTEM", "4.20", ">= 4.20", markProbe(0, unix.FAN_MARK_FILESYSTEM, unix.FAN_MODIFY, probeDir)},
	{"FAN_REPORT_TID", "4.20", ">= 4.20", initProbe(unix.FAN_REPORT_TID)},
	{"FAN_OPEN_EXEC", "5.0", ">= 5.0", anyUserMarkProbe(0, unix.FAN_OPEN_EXEC, probeDir)},
	{"FAN_REPORT_FID", "5.1", ">= 5.1", initProbe(unix.FAN_REPORT_FID)},
	{"FAN_CREATE|FAN_DELETE|FAN_MOVE|FAN_ATTRIB", "5.1", ">= 5.1",
		markProbe(unix.FAN_REPORT_FID, 0, unix.FAN_CREATE|unix.FAN_DELETE|unix.FAN_MOVE|unix.FAN_ATTRIB, probeDir)},
	{"FAN_REPORT_DIR_FID", "5.9", ">= 5.9", initProbe(unix.FAN_REPORT_DIR_FID)},
	{"FAN_REPORT_NAME", "5.9", ">= 5.9", initProbe(unix.FAN_REPORT_DFID_NAME)},
	{"fs.fanotify sysctls", "5.13", ">= 5.13 || >= 5.10.220, < 5.11", existsProbe("/proc/sys/fs/fanotify/max_user_marks")},
	{"unprivileged fanotify", "5.13", ">= 5.13 || >= 5.10.220, < 5.11",
		inferredProbe(existsProbe("/proc/sys/fs/fanotify/max_user_marks"), "inferred from fs.fanotify sysctls, which came with it")},
	{"FAN_REPORT_PIDFD", "5.15", ">= 5.15", initProbe(unix.FAN_REPORT_PIDFD)},
	{"FAN_FS_ERROR", "5.16", ">= 5.16", markProbe(unix.FAN_REPORT_FID, unix.FAN_MARK_FILESYSTEM, unix.FAN_FS_ERROR, probeDir)},
	{"FAN_RENAME", "5.17", ">= 5.17", markProbe(unix.FAN_REPORT_DFID_NAME, 0, unix.FAN_RENAME, probeDir)},
	{"FAN_REPORT_TARGET_FID", "5.17", ">= 5.17", initProbe(unix.FAN_REPORT_DFID_NAME_TARGET)},
	{"FAN_MARK_EVICTABLE", "5.19", ">= 5.19", anyUserMarkProbe(unix.FAN_MARK_EVICTABLE, unix.FAN_MODIFY, probeDir)},
	{"FAN_MARK_IGNORE", "6.0", ">= 6.0", anyUserMarkProbe(unix.FAN_MARK_IGNORE_SURV, unix.FAN_MODIFY, probeDir)},
	{"FAN_REPORT_FD_ERROR", "6.13", ">= 6.13", initProbe(unix.FAN_REPORT_FD_ERROR)},
	{"FAN_PRE_ACCESS", "6.14", ">= 6.14", notProbed("only a pre-content class group may ask for it, and fanotify.ext creates notification-class groups only, probes included")},
	{"FAN_REPORT_MNT", "6.15", ">= 6.15", initProbe(unix.FAN_REPORT_MNT)},
	{"FAN_MARK_MNTNS|FAN_MNT_ATTACH|FAN_MNT_DETACH", "6.15", ">= 6.15",
		markProbe(unix.FAN_REPORT_MNT, unix.FAN_MARK_MNTNS, unix.FAN_MNT_ATTACH|unix.FAN_MNT_DETACH, "/proc/self/ns/mnt")},
	{"mount and filesystem marks in user namespaces", "6.16", ">= 6.16", notProbed("needs a child user namespace with its own mounts")},
	{"fs.fanotify.watchdog_timeout", "6.18", ">= 6.18", existsProbe("/proc/sys/fs/fanotify/watchdog_timeout")},
}

// featureCache keeps every settled probe result (supported or unsupported)
// for the life of the process: probing costs a few dozen system calls. A
// probe that could not decide is run again on the next call, since what
// stopped it (the user's group budget or RLIMIT_NOFILE full for a moment)
// may have passed.
type featureCache struct {
	mu      sync.Mutex // queries run concurrently: one probes at a time
	settled map[string]Feature
}

var features featureCache

// Features returns every feature, probing those not settled yet.
func Features() []Feature {
	release, _ := procfs.NewFS(procfs.DefaultRoot).KernelRelease()
	return features.get(release)
}

func (c *featureCache) get(release string) []Feature {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled == nil {
		c.settled = map[string]Feature{}
	}
	version, _ := KernelVersion(release)
	out := make([]Feature, 0, len(featureSpecs))
	for _, spec := range featureSpecs {
		f, ok := c.settled[spec.name]
		if !ok {
			f = Feature{Name: spec.name, Since: spec.since, Expected: promises(spec.constraint, version)}
			f.Supported, f.Detail = spec.probe()
			if f.Supported != Unknown {
				c.settled[spec.name] = f
			}
		}
		out = append(out, f)
	}
	return out
}

// promises reports whether a release satisfies a feature's constraint; an
// unparsable release (nil) promises nothing.
func promises(constraint string, version *semver.Version) bool {
	if version == nil {
		return false
	}
	c, err := semver.NewConstraint(constraint)
	if err != nil {
		panic(fmt.Sprintf("feature constraint %q: %v", constraint, err))
	}
	return c.Check(version)
}

// featureSupport returns the probed support of the named feature.
func featureSupport(name string) Support {
	for _, f := range Features() {
		if f.Name == name {
			return f.Supported
		}
	}
	return Unknown
}

var releasePrefix = regexp.MustCompile(`^(\d+)\.(\d+)(?:\.(\d+))?`)

// KernelVersion turns a kernel release such as "5.15.0-91-generic" or
// "4.18.0-553.el8_10.x86_64" into major.minor.patch. The rest is a
// distribution's build tag, not semver prerelease text: kept, it would sort
// the release before its own base version.
func KernelVersion(release string) (*semver.Version, error) {
	m := releasePrefix.FindStringSubmatch(release)
	if m == nil {
		return nil, fmt.Errorf("kernel release %q does not start with major.minor", release)
	}
	patch := m[3]
	if patch == "" {
		patch = "0"
	}
	return semver.NewVersion(m[1] + "." + m[2] + "." + patch)
}

// initProbe tries fanotify_init with flags on top of a notification group.
func initProbe(flags uint) func() (Support, string) {
	return func() (Support, string) {
		fd, err := newProbeGroup(flags)
		if err != nil {
			return initOutcome(err)
		}
		unix.Close(fd)
		return Supported, ""
	}
}

// markProbe adds one mark with markFlags and mask to a fresh group created
// with initFlags, the feature's dependencies.
func markProbe(initFlags, markFlags uint, mask uint64, path string) func() (Support, string) {
	return markProbeIn(func() (int, error) { return newProbeGroup(initFlags) }, markFlags, mask, path)
}

// anyUserMarkProbe is markProbe for a mark feature that needs no file
// handles. Its group has none where this process may create such a group,
// as on kernels before FAN_REPORT_FID (5.1); else it reports them, the only
// kind a user without CAP_SYS_ADMIN may create (5.13+).
func anyUserMarkProbe(markFlags uint, mask uint64, path string) func() (Support, string) {
	return markProbeIn(func() (int, error) {
		fd, err := newProbeGroup(0)
		if errors.Is(err, unix.EPERM) {
			return newProbeGroup(unix.FAN_REPORT_FID)
		}
		return fd, err
	}, markFlags, mask, path)
}

func newProbeGroup(initFlags uint) (int, error) {
	return unix.FanotifyInit(baseInitFlags|initFlags, eventFileFlags)
}

// markProbeIn adds one mark with markFlags and mask to the group newGroup
// creates, and closes it.
func markProbeIn(newGroup func() (int, error), markFlags uint, mask uint64, path string) func() (Support, string) {
	return func() (Support, string) {
		fd, err := newGroup()
		if err != nil {
			return initOutcome(err)
		}
		defer unix.Close(fd)
		err = unix.FanotifyMark(fd, unix.FAN_MARK_ADD|markFlags, mask, unix.AT_FDCWD, path)
		switch {
		case err == nil:
			return Supported, ""
		case errors.Is(err, unix.EINVAL):
			return Unsupported, "fanotify_mark: EINVAL"
		case isFilesystemRefusal(err):
			return Unknown, fmt.Sprintf("the filesystem of %s refused the probe mark: %s", path, errnoName(err))
		}
		return Unknown, "fanotify_mark: " + errnoName(err)
	}
}

func initOutcome(err error) (Support, string) {
	switch {
	case errors.Is(err, unix.EINVAL):
		return Unsupported, "fanotify_init: EINVAL"
	case errors.Is(err, unix.ENOSYS):
		return Unsupported, "fanotify_init: ENOSYS (kernel without fanotify)"
	case errors.Is(err, unix.EPERM):
		return Unknown, "fanotify_init: EPERM (needs CAP_SYS_ADMIN)"
	}
	return Unknown, "fanotify_init: " + errnoName(err)
}

// isFilesystemRefusal reports the errors of a filesystem that cannot carry
// the mark (no file handles, zero or non-unique fsid).
func isFilesystemRefusal(err error) bool {
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV)
}

func existsProbe(path string) func() (Support, string) {
	return func() (Support, string) {
		_, err := os.Stat(path)
		switch {
		case err == nil:
			return Supported, ""
		case errors.Is(err, os.ErrNotExist):
			return Unsupported, path + " does not exist"
		}
		return Unknown, err.Error()
	}
}

func inferredProbe(probe func() (Support, string), why string) func() (Support, string) {
	return func() (Support, string) {
		s, _ := probe()
		return s, why
	}
}

func notProbed(why string) func() (Support, string) {
	return func() (Support, string) { return Unknown, "not probed: " + why }
}

// errnoName returns the symbolic name of a system call error ("ENOSPC").
func errnoName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	return err.Error()
}
