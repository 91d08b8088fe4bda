package fanotify

import (
	"cmp"
	"errors"
	"math"
	"slices"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// fileOrder compares the open files of two fds in the kernel's order
// (kcmp): negative, zero for the same file, or positive. errGone means one
// of the fds was closed, or its process exited, since the walk; another
// error that the kernel cannot tell (kcmp missing or refused).
type fileOrder func(a, b *procfs.NotifyFD) (int, error)

// fileRanks gives each fd the rank of its open file in the kernel's order
// of its subsystem's files, as a dedup found it.
type fileRanks map[procfs.FDRef]int

// dedup turns a walk's fds into groups held by processes (by pid). The
// fdinfo texts cannot decide it: two reads of one group differ when its
// marks changed in between, and every empty instance reads the same. So
// each subsystem's open files are kept sorted in the kernel's order, and an
// fd finds its file, or its place for a new one, in about log2(files)
// comparisons.
//
// hint, the ranks of an earlier dedup (nil for none), saves most of them:
// the fds it ranks are taken in its order first, and while that order
// holds each one's file is the last one found or comes right after it, one
// comparison. The hint is only an order to try: an fd it misplaces (its
// number reused by another file since) is found by the search.
//
// When order cannot tell, the fd stays a group of its own and exact is
// false. fds are sorted by pid and fd; each group's first fd is its
// primary holder, and groups come out ordered by it. ranks are the fds'
// files' ranks, the hint of the next dedup.
func dedup(fds []procfs.NotifyFD, processes map[int]*process, order fileOrder, hint fileRanks) (groups []*Group, exact bool, ranks fileRanks) {
	f := fileSearch{order: order, sorted: map[string][]int{}}
	fileOf := make([]int, len(fds))
	exact = true
	turns, ranked := hintedOrder(fds, hint)
	for _, i := range turns {
		var ok bool
		fileOf[i], ok = f.find(&fds[i], ranked[i])
		exact = exact && ok
	}
	return groupsOf(fds, fileOf, len(f.files), processes), exact, f.ranks(fds, fileOf)
}

// fileSearch finds the open file of each fd among those of the fds before
// it.
type fileSearch struct {
	order fileOrder
	// files holds the fd each file is compared through, by file number.
	files []*procfs.NotifyFD
	// sorted holds each subsystem's file numbers in the kernel's order.
	sorted map[string][]int
}

// find returns the number of fd's file, trying the last sorted file first
// when tryLast is set. ok is false when order could not tell: fd then has a
// new file of its own, left out of sorted.
func (f *fileSearch) find(fd *procfs.NotifyFD, tryLast bool) (file int, ok bool) {
	k, found, err := -1, false, error(nil)
	if tryLast {
		k, found = f.afterLast(fd)
	}
	if k < 0 {
		k, found, err = f.place(fd)
	}
	same := f.sorted[fd.Subsystem]
	if found {
		return same[k], true
	}
	file = len(f.files)
	f.files = append(f.files, fd)
	if err == nil {
		f.sorted[fd.Subsystem] = slices.Insert(same, k, file)
	}
	return file, err == nil || errors.Is(err, errGone)
}

// afterLast compares fd with the last sorted file of its subsystem, one
// comparison: k is that file's index when it is fd's (found), or the index
// after it when fd's file comes after it; -1 otherwise, or when order
// failed, for place to search.
func (f *fileSearch) afterLast(fd *procfs.NotifyFD) (k int, found bool) {
	same := f.sorted[fd.Subsystem]
	if len(same) == 0 {
		return 0, false
	}
	c, err := f.order(fd, f.files[same[len(same)-1]])
	switch {
	case err != nil || c < 0:
		return -1, false
	case c == 0:
		return len(same) - 1, true
	}
	return len(same), false
}

// place finds the index of fd's file in the sorted files of its subsystem
// (found), or where fd's new file goes. A file whose fd is gone since the
// walk cannot be compared with: it leaves sorted, keeping its holders. err
// is errGone when fd itself is gone, or order's error.
func (f *fileSearch) place(fd *procfs.NotifyFD) (k int, found bool, err error) {
	same := f.sorted[fd.Subsystem]
	defer func() { f.sorted[fd.Subsystem] = same }()
	lo, hi := 0, len(same)
	for lo < hi {
		mid := lo + (hi-lo)/2
		c, err := f.order(fd, f.files[same[mid]])
		if errors.Is(err, errGone) {
			if _, err := f.order(fd, fd); err != nil {
				return 0, false, err
			}
			same = slices.Delete(same, mid, mid+1)
			hi--
			continue
		}
		switch {
		case err != nil:
			return 0, false, err
		case c == 0:
			return mid, true, nil
		case c < 0:
			hi = mid
		default:
			lo = mid + 1
		}
	}
	return lo, false, nil
}

// ranks gives each fd the rank of its file among its subsystem's sorted
// files; the fds of files left out of sorted have none.
func (f *fileSearch) ranks(fds []procfs.NotifyFD, fileOf []int) fileRanks {
	rankOf := make([]int, len(f.files))
	for i := range rankOf {
		rankOf[i] = -1
	}
	for _, same := range f.sorted {
		for rank, file := range same {
			rankOf[file] = rank
		}
	}
	ranks := make(fileRanks, len(fds))
	for i, fd := range fds {
		if r := rankOf[fileOf[i]]; r >= 0 {
			ranks[procfs.FDRef{PID: fd.PID, FD: fd.FD}] = r
		}
	}
	return ranks
}

// hintedOrder is the order in which dedup takes fds (indices), and which
// of them hint ranks: those by rank, then the others; each rank's fds, and
// the others, by pid and fd.
func hintedOrder(fds []procfs.NotifyFD, hint fileRanks) (turns []int, ranked []bool) {
	rank := make([]int, len(fds))
	turns, ranked = make([]int, len(fds)), make([]bool, len(fds))
	for i, fd := range fds {
		turns[i] = i
		rank[i], ranked[i] = hint[procfs.FDRef{PID: fd.PID, FD: fd.FD}]
		if !ranked[i] {
			rank[i] = math.MaxInt
		}
	}
	if hint != nil {
		slices.SortStableFunc(turns, func(a, b int) int { return cmp.Compare(rank[a], rank[b]) })
	}
	return turns, ranked
}

// groupsOf makes a group of each file, taking fds in their order (pid,
// then fd), so that a group's first fd is its primary holder.
func groupsOf(fds []procfs.NotifyFD, fileOf []int, files int, processes map[int]*process) []*Group {
	var groups []*Group
	groupOf := make([]*Group, files)
	for i := range fds {
		if g := groupOf[fileOf[i]]; g != nil {
			g.Holders = append(g.Holders, Holder{process: processes[fds[i].PID], FD: fds[i].FD})
			continue
		}
		g := newGroup(&fds[i], processes)
		groupOf[fileOf[i]] = g
		groups = append(groups, g)
	}
	return groups
}
