package tables

import (
	"encoding/binary"
	"hash/maphash"
)

// RowIDKey is the key of a row's rowid in osqueryd's protocol: osqueryd
// takes a row's rowid from it (DynamicTableRow::get_rowid) and numbers the
// rows of a generate from 0 when it is missing. Not being a column, it is
// never shown.
const RowIDKey = "rowid"

// RowIDs gives the rows of one generate rowids derived from their content
// and their rank among identical rows of the generate. SQLite's multi-index
// OR (WHERE pid = 1 OR instance_id = '2:3') runs one generate per branch and
// drops each row whose rowid an earlier branch returned. Numbered from 0,
// the rows of the branches collide: rows are lost and others come twice
// (osquery#7066, osquery#8024). Derived from content, a rowid repeats only
// for a row an earlier branch returned too, so that an OR returns what a
// plain scan returns, as the primary key of osqueryd's core tables does.
type RowIDs struct {
	table *Table
	seen  map[uint64]uint64 // content hash -> rows of that content so far
	key   []byte
}

// NewRowIDs starts the rowids of a generate of t returning n rows.
func NewRowIDs(t *Table, n int) *RowIDs {
	return &RowIDs{table: t, seen: make(map[uint64]uint64, n)}
}

// Next is the rowid of r, the generate's next row.
func (ids *RowIDs) Next(r Row) int64 {
	ids.key = ids.key[:0]
	for i := range ids.table.Columns {
		v := r.Value(i)
		ids.key = binary.AppendUvarint(ids.key, uint64(len(v)))
		ids.key = append(ids.key, v...)
	}
	content := maphash.Bytes(rowIDSeed, ids.key)
	rank := ids.seen[content]
	ids.seen[content]++
	return int64(maphash.Bytes(rowIDSeed, binary.AppendUvarint(binary.LittleEndian.AppendUint64(ids.key[:0], content), rank)))
}

// rowIDSeed keys the rowids of every generate this process answers: the
// generates of one query, all answered here, must agree.
var rowIDSeed = maphash.MakeSeed()
