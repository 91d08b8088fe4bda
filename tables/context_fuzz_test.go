package tables

import "testing"

// FuzzParseContext checks that no context JSON panics ParseContext or the
// helpers on its result, and that IntRange and IntEquals never drop an
// integer that the constraints admit.
func FuzzParseContext(f *testing.F) {
	for _, seed := range []string{
		`{"constraints":[{"name":"pid","list":[{"op":2,"expr":"123"}],"affinity":"BIGINT"}],"colsUsed":["pid"],"colsUsedBitset":1}`,
		`{"constraints":[{"name":"pid","list":[{"op":"2","expr":"123"}],"affinity":"BIGINT"}]}`,
		`{"constraints":[{"name":"pid","list":"","affinity":"BIGINT"}],"colsUsed":["pid","path"],"colsUsedBitset":3}`,
		`{"constraints":[{"name":"uid","list":[{"op":32,"expr":"1000"},{"op":16,"expr":"2000.5"}],"affinity":"INTEGER"},` +
			`{"name":"path","list":[{"op":65,"expr":"/home/%"},{"op":68,"expr":"/home/x"}],"affinity":"TEXT"}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":4,"expr":"1e30"},{"op":8,"expr":"-1.0e+30"}],"affinity":"BIGINT"}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":4,"expr":"9223372036854775807"},{"op":16,"expr":"-9223372036854775808"}]}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":8,"expr":"NaN"},{"op":2,"expr":"abc"},{"op":72,"expr":"5"}]}]}`,
		`{"constraints":[{"name":"pid","list":[{"op":2,"expr":"1"},{"op":2,"expr":"2"},{"op":71,"expr":""}]}]}`,
		`{"constraints":[{"name":"mnt_ns","list":[{"op":2,"expr":4026531841}]}],"colsUsed":[]}`,
		``,
		`{}`,
		`{"constraints":[{"name":"pid","list":[{"op":"x","expr":"1"}]}]}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		q, err := ParseContext(data)
		if err != nil {
			return
		}
		for col := range q.Constraints {
			q.Uses(col)
			strs, ok := q.Equals(col)
			if ok != (len(strs) > 0) {
				t.Fatalf("Equals(%q) = %q, %v", col, strs, ok)
			}
			if ints, ok := q.IntEquals(col); ok && len(ints) != len(strs) {
				t.Fatalf("IntEquals(%q) = %v for values %q", col, ints, strs)
			}
			checkIntRangeSound(t, q, col)
		}
	})
}
