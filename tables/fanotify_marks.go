package tables

import (
	"context"
	"fmt"
	"slices"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// fanotifyMarks lists every mark once per fd holding its group, so a
// process's view is complete; SUM(primary_holder) counts each mark once.
func fanotifyMarks(env *Env) *Table {
	mt := markTable{
		name: "fanotify_marks", subsystem: procfs.SubsystemFanotify, idCol: "group_id", cols: fanotifyMarkColumns, noMarks: noMarkType,
		summary: "fanotify_groups, whose marks columns count them",
	}
	return &Table{
		Name:        "fanotify_marks",
		Description: "fanotify marks, one row per mark per fd holding the group (one row of type none for a group without marks).",
		Columns: markTableColumns(
			text("group_id", "The group: pid:fd of its lowest-pid holder, as in fanotify_groups", index),
			"SUM(primary_holder) counts each mark once",
			"Inode: the file its handle resolves to; mount: the mount point in the holder's namespace; filesystem: a mount of the device. Empty when unknown",
			fanotifyMarkColumns),
		Generate: mt.generate(env),
		Stream:   mt.stream(env),
	}
}

// markColumn is a column computed from one mark alone. key, when set, is
// what the value depends on besides the mark's kind (a mask, a device):
// rows of consecutive marks of the same kind and key share one string, so
// that the names of a mask are built once for the watches of an instance
// that share it, not once per row.
type markColumn struct {
	def   table.ColumnDefinition
	value func(*procfs.Mark) string
	key   func(*procfs.Mark) uint64
}

// Keys of the mark columns that have one.
var (
	maskKey    = func(m *procfs.Mark) uint64 { return uint64(m.Mask) }
	ignoredKey = func(m *procfs.Mark) uint64 { return uint64(m.IgnoredMask) }
	flagsKey   = func(m *procfs.Mark) uint64 { return uint64(m.Flags) }
	devKey     = func(m *procfs.Mark) uint64 { return uint64(m.Dev.Major)<<32 | uint64(m.Dev.Minor) }
)

// markTableColumns lists the columns of a per-mark table in row order: the
// holder's, the group id, primary_holder, the mark's own and path.
func markTableColumns(idCol table.ColumnDefinition, sumNote, pathDesc string, cols []markColumn) []table.ColumnDefinition {
	defs := append(identityDefinitions(holderColumns), idCol,
		integer("primary_holder", "1 on the rows of the lowest-pid holder (lowest fd on ties): "+sumNote))
	for _, c := range cols {
		defs = append(defs, c.def)
	}
	// Hidden: SELECT * skips it. Decoding a file handle costs about twice
	// what the kernel spends printing the mark (open_by_handle_at, then a
	// readlink), so a query names path when it wants it.
	return append(defs, text("path", pathDesc+". Hidden: name it in the query (SELECT *, path) to have it resolved", hidden))
}

var fanotifyMarkColumns = []markColumn{
	{text("mark_type", "inode, mount, filesystem or mntns; none for a group without marks (one row), unknown when its fdinfo did not parse"),
		func(m *procfs.Mark) string { return m.Kind.String() }, nil},
	{bigint("inode", "Inode number (inode marks)"), func(m *procfs.Mark) string {
		return ifKind(m, formatUint(m.Inode), procfs.MarkInode)
	}, nil},
	{text("device", "major:minor of the filesystem (inode and filesystem marks)"), func(m *procfs.Mark) string {
		return ifKind(m, m.Dev.String(), procfs.MarkInode, procfs.MarkFilesystem)
	}, devKey},
	{bigint("mount_id", "Mount ID as in mountinfo (mount marks)"), func(m *procfs.Mark) string {
		return ifKind(m, formatUint(m.MountID), procfs.MarkMount)
	}, nil},
	{bigint("marked_mnt_ns", "Inode of the marked mount namespace (mntns marks)"), func(m *procfs.Mark) string {
		return ifKind(m, formatUint(m.MntNS), procfs.MarkMntNS)
	}, nil},
	{bigint("mask", "Events the mark reports"), func(m *procfs.Mark) string { return formatUint(uint64(m.Mask)) }, maskKey},
	{text("mask_names", "Events by name"), func(m *procfs.Mark) string { return fanotify.FanotifyMaskNames(m.Mask) }, maskKey},
	{bigint("ignored_mask", "Events the mark ignores"), func(m *procfs.Mark) string { return formatUint(uint64(m.IgnoredMask)) }, ignoredKey},
	{text("ignored_mask_names", "Ignored events by name"), func(m *procfs.Mark) string { return fanotify.FanotifyMaskNames(m.IgnoredMask) }, ignoredKey},
	{bigint("mark_flags", "Flags kept on the mark (mflags)"), func(m *procfs.Mark) string { return formatUint(uint64(m.Flags)) }, flagsKey},
	{text("mark_flags_names", "Mark flags by name"), func(m *procfs.Mark) string { return fanotify.MarkFlagNames(m.Flags) }, flagsKey},
}

// ifKind is v for marks of the given kinds, NULL for the others.
func ifKind(m *procfs.Mark, v string, kinds ...procfs.MarkKind) string {
	if slices.Contains(kinds, m.Kind) {
		return v
	}
	return ""
}

// noMarkType is the mark_type of the one row of a group without marks.
func noMarkType(g *fanotify.Group) string {
	if g.ParseErr != nil {
		return "unknown"
	}
	return "none"
}

// markTable is what sets fanotify_marks and inotify_watches apart: rows per
// mark of one subsystem, identified by idCol, with the mark's own columns.
type markTable struct {
	name, subsystem, idCol string
	cols                   []markColumn
	// noMarks, when set, gives the mark_type of the one row a group without
	// marks gets.
	noMarks func(*fanotify.Group) string
	// summary is the table that counts the same marks a row per group,
	// which a query refused for its size is pointed to.
	summary string
}

// query takes the query's snapshot and counts its rows, refusing a query
// whose result would pass max_rows before it builds a row: osqueryd holds a
// result whole, and a host with a million watches would push osqueryd's
// worker over its watchdog's memory limit.
func (mt markTable) query(ctx context.Context, env *Env, q QueryContext) (nq *notifyQuery, rows int, err error) {
	nq, err = newNotifyQuery(ctx, env, q, mt.subsystem, mt.idCol, readsMarks(q, mt.cols), showsGroup(q, mt.idCol))
	if err != nil {
		return nil, 0, err
	}
	rows = nq.markRowCount(mt.noMarks != nil)
	if rows > env.Config.MaxRows {
		return nil, 0, fmt.Errorf("%s: the query would return %d rows, over max_rows (%d): constrain pid or %s, "+
			"count with %s, or raise max_rows in the configuration file", mt.name, rows, env.Config.MaxRows, mt.idCol, mt.summary)
	}
	return nq, rows, nil
}

// generate builds every row at once, as the embedded engine reads them.
func (mt markTable) generate(env *Env) GenerateFunc {
	return func(ctx context.Context, q QueryContext) ([]Row, error) {
		nq, n, err := mt.query(ctx, env, q)
		if err != nil {
			return nil, err
		}
		return nq.markRows(ctx, mt.cols, mt.noMarks, make([]Row, 0, n), nil, keepRows), nil
	}
}

// stream builds the rows as they are read, one holder's at a time, each in
// the room of the previous holder's. They read nothing: the marks of groups
// the walk only counted are read again before it returns, while ctx lasts,
// and their rows counted as built.
func (mt markTable) stream(env *Env) StreamFunc {
	return func(ctx context.Context, q QueryContext) (Rows, error) {
		nq, n, err := mt.query(ctx, env, q)
		if err != nil {
			return Rows{}, err
		}
		if nq.readsMarksAgain(mt.cols) {
			rows := nq.markRows(ctx, mt.cols, mt.noMarks, make([]Row, 0, n), nil, keepRows)
			return Rows{len(rows), slices.Values(rows)}, nil
		}
		return Rows{n, func(yield func(Row) bool) {
			nq.markRows(ctx, mt.cols, mt.noMarks, nil, new(rowRoom), func(rows []Row) ([]Row, bool) {
				for _, row := range rows {
					if !yield(row) {
						return nil, false
					}
				}
				clear(rows)
				return rows[:0], true
			})
		}}, nil
	}
}

// readsMarksAgain tells that building the rows reads the fdinfo of some
// group the query wants again: its marks were counted by the walk, not kept.
func (nq *notifyQuery) readsMarksAgain(cols []markColumn) bool {
	return readsMarks(nq.q, cols) && slices.ContainsFunc(nq.groups, func(g *fanotify.Group) bool {
		return nq.wantsHolder(g) && g.ParseErr == nil && !g.Info.Kept()
	})
}

// readsMarks tells that q reads a column of the marks themselves, which
// counting them cannot give.
func readsMarks(q QueryContext, cols []markColumn) bool {
	return q.Uses("path") || slices.ContainsFunc(cols, func(c markColumn) bool { return q.Uses(c.def.Name) })
}

// markLayout is where each part of a per-mark row sits (markTableColumns):
// first the values a holder's rows share (the holder's columns, the group
// id and primary_holder), then each mark's own (its columns, then path).
type markLayout struct {
	id, primary, shared, path, own int
}

func newMarkLayout(cols []markColumn) markLayout {
	n := len(holderColumns)
	return markLayout{id: n, primary: n + 1, shared: n + 2, path: len(cols), own: len(cols) + 1}
}

// markRows builds, for every group and holder the query wants, one row per
// mark, and for a group without marks one row whose mark_type is
// noMarks(g) (no row when noMarks is nil). Only the columns the query reads
// are computed: SELECT COUNT(*) decodes no mark, resolves no path and gets
// zero Rows. Each holder's rows are appended to rows and handed to next,
// which returns what to append the next holder's to (rows itself to keep
// them, rows[:0], cleared, to reuse the slice) and false to stop. The
// slice's capacity past len(rows) must hold zero Rows only: they are not
// written, so that the pages of a fresh slice of a million of them are not
// touched. With room set, every holder's rows of marks are built in it:
// next must be done with a holder's rows when it returns.
func (nq *notifyQuery) markRows(ctx context.Context, cols []markColumn, noMarks func(*fanotify.Group) string,
	rows []Row, room *rowRoom, next func([]Row) ([]Row, bool)) []Row {
	b := nq.newMarkRowBuilder(cols, noMarks)
	b.room = room
	var marks []procfs.Mark // of the group, decoded into one buffer for all groups
	for _, g := range nq.groups {
		if !nq.wantsHolder(g) {
			continue
		}
		if b.decode {
			marks = slices.AppendSeq(slices.Grow(marks[:0], g.Info.MarkCount), g.Marks(ctx))
		}
		for i, h := range g.Holders {
			if !nq.wantPID(h.PID) {
				continue
			}
			var more bool
			if rows, more = next(b.appendHolderRows(rows, g, i, marks)); !more {
				return rows
			}
		}
	}
	return rows
}

// keepRows keeps every holder's rows (see markRows).
func keepRows(rows []Row) ([]Row, bool) { return rows, true }

// markRowBuilder builds the rows of one query on a per-mark table.
type markRowBuilder struct {
	nq   *notifyQuery
	at   markLayout
	cols []markColumn
	used []int // of cols, the columns the query reads
	// own lays out a row's own values: the used columns', then path's.
	own     *rowLayout
	noMarks func(*fanotify.Group) string
	// decode tells that the query reads a column of the marks themselves,
	// withPath that it reads path, readsShared one of the shared values.
	decode, withPath, readsShared bool
	// identity are the parts of the holders' identities the query shows.
	identity fanotify.IdentityParts
	// blank are the shared values of queries that read none of them: own
	// values sit after as many as the table has.
	blank []string
	// last is, for each column with a key, its value for the last mark.
	last []lastValue
	// room, when set, holds the rows of marks of one holder at a time.
	room *rowRoom
}

// lastValue is a column's value for a mark of the given kind and key.
type lastValue struct {
	kind  procfs.MarkKind // 0, which no parsed mark has, before the first
	key   uint64
	value string
}

// newMarkRowBuilder returns the builder of the rows the query reads.
func (nq *notifyQuery) newMarkRowBuilder(cols []markColumn, noMarks func(*fanotify.Group) string) *markRowBuilder {
	b := &markRowBuilder{nq: nq, at: newMarkLayout(cols), cols: cols, noMarks: noMarks,
		withPath: nq.q.Uses("path"), decode: readsMarks(nq.q, cols)}
	for k, c := range cols {
		if nq.q.Uses(c.def.Name) {
			b.used = append(b.used, k)
		}
	}
	ownUsed := b.used
	if b.withPath {
		ownUsed = append(slices.Clone(b.used), b.at.path)
	}
	b.own = newRowLayout(b.at.own, ownUsed)
	var shown []holderColumn
	shown, b.identity = usedColumns(nq.q, holderColumns)
	b.readsShared = len(shown) > 0 || nq.q.Uses(nq.idCol) || nq.q.Uses("primary_holder")
	b.blank = make([]string, b.at.shared)
	b.last = make([]lastValue, len(cols))
	return b
}

// value is column k's value for m: the previous mark's when the column's
// key says it is the same.
func (b *markRowBuilder) value(k int, m *procfs.Mark) string {
	c := &b.cols[k]
	if c.key == nil {
		return c.value(m)
	}
	last, key := &b.last[k], c.key(m)
	if last.kind != m.Kind || last.key != key {
		*last = lastValue{m.Kind, key, c.value(m)}
	}
	return last.value
}

// appendHolderRows appends the rows of g's i-th holder; marks are g's,
// decoded when the query reads a column of them.
func (b *markRowBuilder) appendHolderRows(rows []Row, g *fanotify.Group, i int, marks []procfs.Mark) []Row {
	shared := b.blank
	if b.readsShared {
		shared = b.holderValues(g, i)
	}
	if g.Info.MarkCount == 0 && b.noMarks != nil {
		// A block of its own, not b.room: the marks' rows below take over
		// the room after it, even when there are none.
		var own []string
		rows, own = b.own.appendRows(rows, shared, 1, nil)
		if k := slices.IndexFunc(b.cols, func(c markColumn) bool { return c.def.Name == "mark_type" }); b.own.place[k] >= 0 {
			own[b.own.place[k]] = b.noMarks(g)
		}
	}
	switch {
	case !b.decode && !b.readsShared:
		// The query reads no column (COUNT(*)): zero Rows, the room past
		// len(rows) left unwritten (see markRows).
		return slices.Grow(rows, g.Info.MarkCount)[:len(rows)+g.Info.MarkCount]
	case !b.decode:
		// The query reads no column of the mark itself: the holder's rows
		// are its shared values alone, all of them one rowValues.
		alike := Row{&rowValues{block: &rowBlock{shared: shared}}}
		for range g.Info.MarkCount {
			rows = append(rows, alike)
		}
		return rows
	}
	var paths []string
	if b.withPath {
		paths = b.nq.snap.MarkPaths(g.Holders[i], marks)
	}
	rows, own := b.own.appendRows(rows, shared, len(marks), b.room)
	for j := range marks {
		values := own[j*b.own.width : (j+1)*b.own.width]
		for v, k := range b.used {
			values[v] = b.value(k, &marks[j])
		}
		if b.withPath {
			values[len(b.used)] = paths[j]
		}
	}
	return rows
}

// markRowCount is how many rows markRows yields when the walk kept the
// marks of the groups the query wants: osqueryd's protocol sends the count
// before the rows, and a generate sizes its slice of a million rows once.
func (nq *notifyQuery) markRowCount(rowWithoutMarks bool) int {
	n := 0
	for _, g := range nq.groups {
		if !nq.wantGroup(g) {
			continue
		}
		perHolder := g.Info.MarkCount
		if perHolder == 0 && rowWithoutMarks {
			perHolder = 1
		}
		for _, h := range g.Holders {
			if nq.wantPID(h.PID) {
				n += perHolder
			}
		}
	}
	return n
}

// holderValues are the values g's i-th holder's rows share, those the
// query reads filled: the holder's columns, the group id and primary_holder.
func (b *markRowBuilder) holderValues(g *fanotify.Group, i int) []string {
	nq, at := b.nq, b.at
	values := make([]string, at.shared)
	h := g.Holder(i, b.identity)
	for k, c := range holderColumns {
		if nq.q.Uses(c.def.Name) {
			values[k] = c.value(h)
		}
	}
	if nq.q.Uses(nq.idCol) {
		values[at.id] = g.ID
	}
	if nq.q.Uses("primary_holder") {
		values[at.primary] = boolInt(i == 0)
	}
	return values
}
