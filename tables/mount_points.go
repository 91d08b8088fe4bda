package tables

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"slices"
	"strconv"

	"github.com/moby/sys/mountinfo"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// mountPoints lists every mount of every mount namespace, with the
// fanotify and inotify marks attached to it. Mount marks are per mount, so
// consolidating them onto one superblock mark starts from this table.
func mountPoints(env *Env) *Table {
	return &Table{
		Name:        "mount_points",
		Description: "Mounts of every mount namespace a process or thread is in (one row per mount per namespace) with the fanotify and inotify marks on them.",
		Columns:     definitions(mountColumns),
		Generate: func(ctx context.Context, q QueryContext) ([]Row, error) {
			return generateMountPoints(ctx, env, q)
		},
	}
}

// mount is what one row of mount_points describes: a mount as one
// namespace shows it, and the marks on it (counted only when the query
// reads a count).
type mount struct {
	view      *viewText
	info      *mountinfo.Info
	reachable bool // found only when the query reads it
	marks     mountMarks
	counted   bool
}

// viewText is the namespace of a mount and the pid it was read through, as
// the rows show them: formatted once for all the namespace's mounts.
type viewText struct{ mntNS, pid string }

var mountColumns = []column[*mount]{
	{bigint("mnt_ns", "Inode of the mount namespace (/proc/PID/ns/mnt)", index),
		func(m *mount) string { return m.view.mntNS }},
	{bigint("pid", "Process through which the namespace was read: of its processes (threads for a namespace only a thread is in), the lowest pid among those whose root directory shows the most mounts, or the pid the query asks for. Paths are relative to its root directory, and mounts it does not reach are not listed: when every process of a namespace is chrooted (a service with RootDirectory=), the rows are the mounts below one of their roots, the one with the most", index),
		func(m *mount) string { return m.view.pid }},
	{bigint("mount_id", "Mount ID, unique on the host (fdinfo's mnt_id: is the same number in hex)"),
		func(m *mount) string { return strconv.Itoa(m.info.ID) }},
	{bigint("parent_id", "Mount ID of the mount this one is mounted on. Some are never listed: that of the mount on /, the namespace's first mount, hidden below it, and, when pid is chrooted, those outside its root"),
		func(m *mount) string { return strconv.Itoa(m.info.Parent) }},
	{text("device", "major:minor of the filesystem (fdinfo's sdev: decodes to the same pair)"),
		func(m *mount) string {
			return procfs.Dev{Major: uint32(m.info.Major), Minor: uint32(m.info.Minor)}.String()
		}},
	{text("root", "Directory of the filesystem that is mounted here (a bind mount's source directory)"),
		func(m *mount) string { return procfs.DisplayPath(m.info.Root) }},
	{text("path", "Mount point"), func(m *mount) string { return procfs.DisplayPath(m.info.Mountpoint) }},
	{text("fs_type", "Filesystem type (type.subtype for FUSE)"), func(m *mount) string { return procfs.DisplayPath(m.info.FSType) }},
	{text("source", "Filesystem-specific source, such as a device path, or none"),
		func(m *mount) string { return procfs.DisplayPath(m.info.Source) }},
	{text("options", "Per-mount options"), func(m *mount) string { return m.info.Options }},
	{text("super_options", "Per-superblock options"), func(m *mount) string { return procfs.DisplayPath(m.info.VFSOptions) }},
	{text("propagation", "Optional fields of mountinfo (shared:N, master:N, propagate_from:N, unbindable), or private when there are none"),
		func(m *mount) string { return propagation(m.info.Optional) }},
	{integer("reachable", "1 when a path from the root directory of pid reaches the mount; 0 when it is covered or below a covered mount: another mount is on its root, or on a directory above its mount point on the same parent (of the mounts stacked on /, lookups start on the lowest and .. from the root reaches the top one; those between are covered). No path leads to it, so no fanotify mount mark can be put on it, and fanotify_limits' projected_need leaves it out"),
		func(m *mount) string { return boolInt(m.reachable) }},
	{integer("fanotify_mount_marks", "fanotify mount marks (FAN_MARK_MOUNT) on this mount, summed over every group; NULL when not counted"),
		markCountOf(func(c *mountMarks) int { return c.fanotifyMount })},
	{integer("fanotify_fs_marks", "fanotify superblock marks (FAN_MARK_FILESYSTEM) on this filesystem, summed over every group; per superblock, so it repeats on every mount of the same device; NULL when not counted"),
		markCountOf(func(c *mountMarks) int { return c.fanotifyFS })},
	{integer("fanotify_inode_marks", "fanotify inode marks on inodes of this filesystem, summed over every group; per superblock, so it repeats on every mount of the same device; NULL when not counted"),
		markCountOf(func(c *mountMarks) int { return c.fanotifyInode })},
	{integer("inotify_watches", "inotify watches on inodes of this filesystem, summed over every instance; per superblock, so it repeats on every mount of the same device; NULL when not counted"),
		markCountOf(func(c *mountMarks) int { return c.inotifyWatches })},
}

// markColumns are the columns filled from markCounts.
var markColumns = []string{"fanotify_mount_marks", "fanotify_fs_marks", "fanotify_inode_marks", "inotify_watches"}

// markCountOf renders one of a mount's mark counts, NULL when not counted.
func markCountOf(count func(*mountMarks) int) func(*mount) string {
	return func(m *mount) string {
		if !m.counted {
			return ""
		}
		return strconv.Itoa(count(&m.marks))
	}
}

// mountMarks counts the fsnotify marks on one mount.
type mountMarks struct {
	fanotifyMount, fanotifyFS, fanotifyInode, inotifyWatches int
}

func generateMountPoints(ctx context.Context, env *Env, q QueryContext) ([]Row, error) {
	views, err := namespaceViews(ctx, env, q)
	if err != nil {
		return nil, err
	}
	var marks *markTally
	if slices.ContainsFunc(markColumns, q.Uses) {
		if marks, err = markCounts(ctx, env); err != nil {
			return nil, err
		}
	}
	var mounts []mount
	for _, v := range views {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pid, infos := v.read(env)
		text := &viewText{mntNS: formatUint(v.mntNS), pid: strconv.Itoa(pid)}
		var reached []bool
		if q.Uses("reachable") {
			reached = procfs.Reachable(infos)
		}
		mounts = slices.Grow(mounts, len(infos))
		for i, info := range infos {
			m := mount{view: text, info: info, reachable: reached != nil && reached[i]}
			if marks != nil {
				m.marks, m.counted = marks.forMount(info), true
			}
			mounts = append(mounts, m)
		}
	}
	return rowsOf(mountColumns, usedOf(definitions(mountColumns), q), mounts), nil
}

// namespaceView is one mount namespace to list and the processes it can
// be read through, in order of preference.
type namespaceView struct {
	mntNS uint64
	pids  []int
}

// namespaceViews picks the namespaces the query needs. Without a pid
// constraint every process and thread is looked at, and each namespace
// keeps as candidates to read it through (see read) its processes, lowest
// pid first, or the threads in it when no process is: a thread has its
// process's root directory (short of unshare(CLONE_FS) and a chroot of
// its own), and would only cost a comparison more. With a pid constraint,
// each asked-for pid shows its own namespace (a row whose pid differs from
// the constraint would be dropped).
func namespaceViews(ctx context.Context, env *Env, q QueryContext) ([]namespaceView, error) {
	wantNS, nsNarrowed := q.IntEquals("mnt_ns")
	asked, pidNarrowed := q.IntEquals("pid")
	var pids []int
	if pidNarrowed {
		for _, p := range asked {
			if p > 0 && p <= math.MaxInt32 && !slices.Contains(pids, int(p)) {
				pids = append(pids, int(p))
			}
		}
	} else {
		var err error
		if pids, err = env.Proc.Pids(); err != nil {
			return nil, err
		}
	}

	ids := pids
	if !pidNarrowed {
		ids = withThreads(env, pids)
	}
	var views []namespaceView
	byNS := make(map[uint64]int) // mnt_ns -> index in views
	threadViews := len(ids)      // views from this index on were started by threads
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if i == len(pids) {
			threadViews = len(views)
		}
		ns, err := env.Proc.NamespaceInode(id, "mnt")
		if skipProcess(env, id, err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if nsNarrowed && !slices.Contains(wantNS, int64(ns)) {
			continue
		}
		if j, seen := byNS[ns]; seen && !pidNarrowed {
			if i < len(pids) || j >= threadViews {
				views[j].pids = append(views[j].pids, id)
			}
			continue
		}
		byNS[ns] = len(views)
		views = append(views, namespaceView{mntNS: ns, pids: []int{id}})
	}
	return views, nil
}

// withThreads is pids followed by their other threads, so that a
// namespace a process is in is read through a process. A process whose
// threads cannot be listed keeps its own namespace.
func withThreads(env *Env, pids []int) []int {
	ids := slices.Clone(pids)
	for _, pid := range pids {
		tids, err := env.Proc.OtherThreads(pid)
		if err != nil && !skipProcess(env, pid, err) {
			env.Log.Warn("mount_points: skipping the threads of a process that cannot be listed", "pid", pid, "err", err)
		}
		ids = append(ids, tids...)
	}
	return ids
}

// read returns the mounts of the namespace and the pid they were read
// through. The kernel lists in /proc/PID/mountinfo only the mounts that
// PID's root directory reaches: a chrooted process shows part of the
// namespace. So each root among the candidates is read once, and the view
// with the most mounts is kept, the namespace's whole view where any
// process has it (the first one read on ties). No mounts when every
// candidate process has exited, or when the namespace's mount table cannot
// be read: one namespace (a container with a mount table this reader
// rejects) must not take every other one away.
func (v namespaceView) read(env *Env) (int, []*mountinfo.Info) {
	var pid int
	var mounts []*mountinfo.Info
	for _, readers := range v.byRoot(env) {
		p, m, err := readFirst(env, readers)
		if err != nil {
			env.Log.Warn("mount_points: skipping a mount namespace whose mount table cannot be read",
				"mnt_ns", v.mntNS, "pid", p, "err", err)
			return 0, nil
		}
		if len(m) > len(mounts) {
			pid, mounts = p, m
		}
	}
	return pid, mounts
}

// byRoot groups the candidates by root directory, in order. Those whose
// root cannot be identified (not allowed, or statx missing) form one group
// of their own; those that exited are left out. A single candidate is not
// looked at: there is nothing to compare.
func (v namespaceView) byRoot(env *Env) [][]int {
	if len(v.pids) == 1 {
		return [][]int{v.pids}
	}
	var groups [][]int
	index := make(map[procfs.Root]int)
	for _, pid := range v.pids {
		root, err := env.Proc.ProcessRoot(pid)
		if errors.Is(err, procfs.ErrProcessGone) {
			continue
		}
		i, seen := index[root] // an unidentified root is the zero Root
		if !seen {
			i = len(groups)
			index[root] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], pid)
	}
	return groups
}

// readFirst reads the mounts through the first of pids that can be read,
// falling back to the next one when a process has exited; no mounts and
// no error when every one has.
func readFirst(env *Env, pids []int) (int, []*mountinfo.Info, error) {
	for _, pid := range pids {
		mounts, err := env.Proc.Mounts(pid)
		if skipProcess(env, pid, err) {
			continue
		}
		return pid, mounts, err
	}
	return 0, nil, nil
}

// skipProcess reports whether err means pid is to be left out: it exited,
// or this process may not read it (another user's process when not root).
func skipProcess(env *Env, pid int, err error) bool {
	switch {
	case errors.Is(err, procfs.ErrProcessGone):
		return true
	case errors.Is(err, fs.ErrPermission):
		env.Log.Debug("mount_points: skipping unreadable process", "pid", pid, "err", err)
		return true
	}
	return false
}

// propagation renders mountinfo's optional fields; none means private.
func propagation(optional string) string {
	if optional == "" {
		return "private"
	}
	return optional
}
