package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Where a limit's value comes from.
const (
	// SourceSysctl: /proc/sys/fs/{inotify,fanotify}, the initial user
	// namespace's value.
	SourceSysctl = "sysctl"
	// SourceUserNS: /proc/sys/user/max_*, a child user namespace's own value.
	SourceUserNS = "userns"
	// SourceKernelDefault: a value compiled into a kernel that publishes no
	// sysctl for it (fanotify before 5.13).
	SourceKernelDefault = "kernel_default"
)

// Scopes: what one limit value is counted against.
const (
	ScopeUser  = "user"  // each (user namespace, euid)
	ScopeGroup = "group" // each fanotify group (kernels before 5.13)
	ScopeQueue = "queue" // each group's or instance's event queue
)

// Limits of kernels without /proc/sys/fs/fanotify (before 5.13). The kernel
// compares with `>` before counting, so one more than the nominal 128 groups
// and 8192 marks get through: these are the counts at which the next call
// fails.
const (
	oldFanotifyGroupsPerUser = 128 + 1
	oldFanotifyMarksPerGroup = 8192 + 1
	oldFanotifyQueuedEvents  = 16384
)

// Limit is one kernel limit on inotify or fanotify.
type Limit struct {
	Subsystem string // "inotify" or "fanotify"
	Name      string // file under /proc/sys/fs/<Subsystem>/, e.g. "max_user_marks"
	// UserFile is the per-namespace file under /proc/sys/user/ ("" for queue
	// limits, which have none).
	UserFile string
}

// Sysctl is the dotted name of the initial namespace's sysctl.
func (l Limit) Sysctl() string { return "fs." + l.Subsystem + "." + l.Name }

// UserSysctl is the dotted name of the per-namespace sysctl, "" if none.
func (l Limit) UserSysctl() string {
	if l.UserFile == "" {
		return ""
	}
	return "user." + l.UserFile
}

// The six limits, in the order tables list them.
var (
	InotifyInstances     = Limit{"inotify", "max_user_instances", "max_inotify_instances"}
	InotifyWatches       = Limit{"inotify", "max_user_watches", "max_inotify_watches"}
	InotifyQueuedEvents  = Limit{"inotify", "max_queued_events", ""}
	FanotifyGroups       = Limit{"fanotify", "max_user_groups", "max_fanotify_groups"}
	FanotifyMarks        = Limit{"fanotify", "max_user_marks", "max_fanotify_marks"}
	FanotifyQueuedEvents = Limit{"fanotify", "max_queued_events", ""}
	AllLimits            = []Limit{InotifyInstances, InotifyWatches, InotifyQueuedEvents, FanotifyGroups, FanotifyMarks, FanotifyQueuedEvents}
)

// LimitValue is a limit with the value the kernel enforces.
type LimitValue struct {
	Limit
	Scope  string // ScopeUser, ScopeGroup or ScopeQueue
	Value  int64
	Source string
}

// Sysctls holds the limit values this process can see.
type Sysctls struct {
	// Initial holds the initial user namespace's values, one per limit of
	// AllLimits, in that order. On kernels before 5.13 the fanotify entries
	// are the compiled-in defaults, and max_user_marks has ScopeGroup.
	Initial []LimitValue
	// Own maps a limit to the /proc/sys/user value of the user namespace
	// this process runs in. From the initial namespace these equal
	// Initial; from a child namespace they are that namespace's own limits,
	// which nobody outside it can read.
	Own map[Limit]int64
	// FanotifySysctls is false on kernels without /proc/sys/fs/fanotify.
	FanotifySysctls bool
}

// Lookup returns the initial namespace's value of l.
func (s Sysctls) Lookup(l Limit) (LimitValue, bool) {
	for _, v := range s.Initial {
		if v.Limit == l {
			return v, true
		}
	}
	return LimitValue{}, false
}

// ReadSysctls reads the six limits and this namespace's /proc/sys/user values.
func (fs FS) ReadSysctls() (Sysctls, error) {
	s := Sysctls{Own: map[Limit]int64{}}
	_, err := os.Stat(fs.Path("sys/fs/fanotify"))
	switch {
	case err == nil:
		s.FanotifySysctls = true
	case !errors.Is(err, os.ErrNotExist):
		return Sysctls{}, fmt.Errorf("sysctls: %w", err)
	}
	for _, l := range AllLimits {
		v, err := fs.initialValue(l, s.FanotifySysctls)
		if err != nil {
			return Sysctls{}, err
		}
		s.Initial = append(s.Initial, v)
		if l.UserFile == "" {
			continue
		}
		own, err := fs.readSysctl("sys/user/" + l.UserFile)
		switch {
		case err == nil:
			s.Own[l] = own
		case !errors.Is(err, os.ErrNotExist): // kernels before 4.11 (inotify) and 5.13 (fanotify) lack them
			return Sysctls{}, err
		}
	}
	return s, nil
}

func (fs FS) initialValue(l Limit, fanotifySysctls bool) (LimitValue, error) {
	if l.Subsystem == "fanotify" && !fanotifySysctls {
		return oldFanotifyLimit(l), nil
	}
	v, err := fs.readSysctl("sys/fs/" + l.Subsystem + "/" + l.Name)
	if err != nil {
		return LimitValue{}, err
	}
	return LimitValue{Limit: l, Scope: modernScope(l), Value: v, Source: SourceSysctl}, nil
}

// modernScope is what a limit is counted against since 5.13 (fanotify) and
// 4.11 (inotify): each (user namespace, euid), except event queues.
func modernScope(l Limit) string {
	if l.UserFile == "" {
		return ScopeQueue
	}
	return ScopeUser
}

// oldFanotifyLimit is what a kernel before 5.13 enforces: groups per real
// uid, marks per group, events per queue, none of them tunable.
func oldFanotifyLimit(l Limit) LimitValue {
	v := LimitValue{Limit: l, Source: SourceKernelDefault}
	switch l {
	case FanotifyGroups:
		v.Value, v.Scope = oldFanotifyGroupsPerUser, ScopeUser
	case FanotifyMarks:
		v.Value, v.Scope = oldFanotifyMarksPerGroup, ScopeGroup
	case FanotifyQueuedEvents:
		v.Value, v.Scope = oldFanotifyQueuedEvents, ScopeQueue
	}
	return v
}

func (fs FS) readSysctl(rel string) (int64, error) {
	data, err := os.ReadFile(fs.Path(rel))
	if err != nil {
		return 0, fmt.Errorf("sysctl: %w", err)
	}
	v, err := ParseSysctlInt(data)
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %w", fs.Path(rel), err)
	}
	return v, nil
}

// ParseSysctlInt parses a /proc/sys file holding one integer.
func ParseSysctlInt(data []byte) (int64, error) {
	text := string(bytes.TrimSpace(data))
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an integer: %q", text)
	}
	return v, nil
}

// KernelRelease returns the running kernel's release string
// (/proc/sys/kernel/osrelease), e.g. "6.18.4-200.fc43.x86_64".
func (fs FS) KernelRelease() (string, error) {
	data, err := os.ReadFile(fs.Path("sys/kernel/osrelease"))
	if err != nil {
		return "", fmt.Errorf("kernel release: %w", err)
	}
	return string(bytes.TrimSpace(data)), nil
}
