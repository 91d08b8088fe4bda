package procfs

import (
	"os"
	"testing"
)

func TestParseIDMapAndInside(t *testing.T) {
	// A rootless container: root inside is 1000 outside, 1..65536 are
	// subordinate ids from 100000.
	m, err := ParseIDMap([]byte("         0       1000          1\n         1     100000      65536\n"))
	if err != nil {
		t.Fatal(err)
	}
	for outside, want := range map[uint32]uint32{1000: 0, 100000: 1, 165535: 65536} {
		if got, ok := m.Inside(outside); !ok || got != want {
			t.Errorf("Inside(%d) = %d, %v; want %d", outside, got, ok, want)
		}
	}
	for _, unmapped := range []uint32{0, 999, 1001, 165536} {
		if got, ok := m.Inside(unmapped); ok {
			t.Errorf("Inside(%d) = %d, want unmapped", unmapped, got)
		}
	}
	// The initial namespace maps everything onto itself, up to the last id.
	whole, err := ParseIDMap([]byte("0 0 4294967295\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := whole.Inside(4294967294); !ok || got != 4294967294 {
		t.Errorf("identity map: Inside(4294967294) = %d, %v", got, ok)
	}
}

func TestParseIDMapErrors(t *testing.T) {
	for _, bad := range []string{"0 1000\n", "0 x 1\n", "0 0 4294967296\n"} {
		if _, err := ParseIDMap([]byte(bad)); err == nil {
			t.Errorf("ParseIDMap(%q): no error", bad)
		}
	}
	if m, err := ParseIDMap(nil); err != nil || len(m) != 0 {
		t.Errorf("empty map (a namespace before its map is written): %v, %v", m, err)
	}
}

func TestUIDMapLive(t *testing.T) {
	m, err := NewFS(DefaultRoot).UIDMap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if uid, ok := m.Inside(uint32(os.Getuid())); !ok || uid != uint32(os.Getuid()) {
		t.Errorf("own uid %d through own uid_map: %d, %v", os.Getuid(), uid, ok)
	}
}
