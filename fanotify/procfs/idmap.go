package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// IDExtent is one line of /proc/PID/uid_map: Count ids starting at First
// inside the namespace are Lower... outside, as seen by the reader.
type IDExtent struct {
	First, Lower, Count uint32
}

// IDMap is a parsed uid_map or gid_map.
type IDMap []IDExtent

// ParseIDMap parses /proc/PID/uid_map or gid_map ("first lower count" per
// line).
func ParseIDMap(data []byte) (IDMap, error) {
	var m IDMap
	for line := range bytes.Lines(data) {
		fields := strings.Fields(string(line))
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 {
			return nil, fmt.Errorf("id map line %q: want first, lower and count", bytes.TrimSpace(line))
		}
		var nums [3]uint32
		for i, f := range fields {
			n, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("id map line %q: %w", bytes.TrimSpace(line), err)
			}
			nums[i] = uint32(n)
		}
		m = append(m, IDExtent{First: nums[0], Lower: nums[1], Count: nums[2]})
	}
	return m, nil
}

// Inside translates an id as the reader sees it (a uid in /proc/PID/status)
// into the id inside the namespace; false when the namespace does not map
// it.
func (m IDMap) Inside(outside uint32) (uint32, bool) {
	for _, e := range m {
		if outside >= e.Lower && uint64(outside) < uint64(e.Lower)+uint64(e.Count) {
			return e.First + (outside - e.Lower), true
		}
	}
	return 0, false
}

// UIDMap reads pid's uid_map as this process sees it.
func (fs FS) UIDMap(pid int) (IDMap, error) {
	data, err := fs.readPid(mayWait, pid, "uid_map")
	if err != nil {
		return nil, err
	}
	m, err := ParseIDMap(data)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return m, nil
}
