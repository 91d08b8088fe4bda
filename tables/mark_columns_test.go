package tables

import (
	"testing"
	"unsafe"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// sampleMarks are marks whose fields take a few values each, two of each
// (on different inodes) for every kind in turn: from one mark to the next,
// the kind changes with the same key, the key with the same kind, or
// neither.
func sampleMarks() []procfs.Mark {
	var marks []procfs.Mark
	kinds := []procfs.MarkKind{procfs.InotifyWatch, procfs.MarkInode, procfs.MarkMount, procfs.MarkFilesystem, procfs.MarkMntNS}
	for _, dev := range []procfs.Dev{{}, {Major: 0, Minor: 45}, {Major: 8, Minor: 1}} {
		for _, mask := range []uint32{0, 0x2, 0x4000_0008} {
			for _, ignored := range []uint32{0, 0x20} {
				for _, kind := range kinds {
					for range 2 {
						marks = append(marks, procfs.Mark{Kind: kind, Dev: dev, Mask: mask, IgnoredMask: ignored,
							Flags: ignored >> 4, Inode: uint64(len(marks)), MountID: 21, MntNS: 4026531841, WD: int32(len(marks))})
					}
				}
			}
		}
	}
	return marks
}

// A column's key must decide its value for marks of one kind: the rows
// built from it depend on that.
func TestMarkColumnKeysDecideValues(t *testing.T) {
	marks := sampleMarks()
	for _, cols := range [][]markColumn{fanotifyMarkColumns, inotifyWatchColumns} {
		for _, c := range cols {
			if c.key == nil {
				continue
			}
			seen := map[[2]uint64]string{}
			for i := range marks {
				m := &marks[i]
				k := [2]uint64{uint64(m.Kind), c.key(m)}
				v, ok := seen[k]
				if ok && v != c.value(m) {
					t.Errorf("%s: marks of kind %v and key %#x have values %q and %q", c.def.Name, m.Kind, k[1], v, c.value(m))
				}
				seen[k] = c.value(m)
			}
		}
	}
}

// The builder gives every mark its column's value, sharing the string of the
// previous mark when the kind and key are the same.
func TestMarkRowValuesShareRepeatedStrings(t *testing.T) {
	marks := sampleMarks()
	for _, cols := range [][]markColumn{fanotifyMarkColumns, inotifyWatchColumns} {
		b := &markRowBuilder{cols: cols, last: make([]lastValue, len(cols))}
		for k, c := range cols {
			shared := 0
			var prev string
			for i := range marks {
				m := &marks[i]
				got := b.value(k, m)
				if want := c.value(m); got != want {
					t.Fatalf("%s of mark %+v: %q, want %q", c.def.Name, m, got, want)
				}
				if i > 0 && c.key != nil && m.Kind == marks[i-1].Kind && c.key(m) == c.key(&marks[i-1]) {
					if len(got) > 0 && unsafe.StringData(got) != unsafe.StringData(prev) {
						t.Fatalf("%s of mark %d: a new string for the same kind and key", c.def.Name, i)
					}
					shared++
				}
				prev = got
			}
			if c.key != nil && shared == 0 {
				t.Errorf("%s: no two consecutive sample marks share a key", c.def.Name)
			}
		}
	}
}
