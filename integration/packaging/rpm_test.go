package packaging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"testing"
)

// RPM header tags and types read by the tests (rpm's lib/rpmtag.h).
const (
	rpmTagPostIn        = 1024
	rpmTagPostUn        = 1026
	rpmTagArch          = 1022
	rpmTagFileModes     = 1030
	rpmTagFileFlags     = 1037
	rpmTagFileUserName  = 1039
	rpmTagFileGroupName = 1040
	rpmTagDirIndexes    = 1116
	rpmTagBaseNames     = 1117
	rpmTagDirNames      = 1118

	rpmTypeInt16       = 3
	rpmTypeInt32       = 4
	rpmTypeString      = 6
	rpmTypeStringArray = 8

	rpmFileConfig    = 1 << 0
	rpmFileNoReplace = 1 << 4
)

// rpmHeader is the main header of an .rpm: tag -> (type, count, data from the
// value's offset to the end of the store).
type rpmHeader map[uint32]rpmValue

type rpmValue struct {
	typ, count uint32
	data       []byte
}

// readRPM skips the 96-byte lead and the signature header and parses the main
// header's index and store.
func readRPM(t *testing.T, rpmPath string) rpmHeader {
	t.Helper()
	data, err := os.ReadFile(rpmPath)
	if err != nil {
		t.Fatal(err)
	}
	const leadLen = 96
	if len(data) < leadLen {
		t.Fatalf("%s: too short for an rpm", rpmPath)
	}
	sigLen, err := rpmHeaderLen(data[leadLen:])
	if err != nil {
		t.Fatalf("%s signature: %v", rpmPath, err)
	}
	start := leadLen + (sigLen+7)/8*8 // the signature is padded to 8 bytes
	h, err := parseRPMHeader(data[start:])
	if err != nil {
		t.Fatalf("%s header: %v", rpmPath, err)
	}
	return h
}

func rpmHeaderLen(b []byte) (int, error) {
	if len(b) < 16 || b[0] != 0x8e || b[1] != 0xad || b[2] != 0xe8 {
		return 0, errors.New("bad header magic")
	}
	entries := int(binary.BigEndian.Uint32(b[8:]))
	storeLen := int(binary.BigEndian.Uint32(b[12:]))
	n := 16 + 16*entries + storeLen
	if n > len(b) {
		return 0, errors.New("header longer than the file")
	}
	return n, nil
}

func parseRPMHeader(b []byte) (rpmHeader, error) {
	if _, err := rpmHeaderLen(b); err != nil {
		return nil, err
	}
	entries := int(binary.BigEndian.Uint32(b[8:]))
	store := b[16+16*entries:][:binary.BigEndian.Uint32(b[12:])]
	h := rpmHeader{}
	for i := range entries {
		e := b[16+16*i:]
		off := binary.BigEndian.Uint32(e[8:])
		if int(off) > len(store) {
			return nil, fmt.Errorf("tag %d: offset beyond the store", binary.BigEndian.Uint32(e))
		}
		h[binary.BigEndian.Uint32(e)] = rpmValue{
			typ:   binary.BigEndian.Uint32(e[4:]),
			count: binary.BigEndian.Uint32(e[12:]),
			data:  store[off:],
		}
	}
	return h, nil
}

func (h rpmHeader) strs(tag uint32) []string {
	v, ok := h[tag]
	if !ok || (v.typ != rpmTypeString && v.typ != rpmTypeStringArray) {
		return nil
	}
	return strings.SplitN(string(v.data), "\x00", int(v.count)+1)[:v.count]
}

func (h rpmHeader) str(tag uint32) string {
	if s := h.strs(tag); len(s) > 0 {
		return s[0]
	}
	return ""
}

func (h rpmHeader) ints(tag uint32) []uint32 {
	v := h[tag]
	out := make([]uint32, 0, v.count)
	for i := range int(v.count) {
		switch v.typ {
		case rpmTypeInt16:
			out = append(out, uint32(binary.BigEndian.Uint16(v.data[2*i:])))
		case rpmTypeInt32:
			out = append(out, binary.BigEndian.Uint32(v.data[4*i:]))
		}
	}
	return out
}

// files lists the payload as recorded in the header. File contents live in
// the compressed cpio payload and are checked through the .deb instead.
func (h rpmHeader) files() map[string]packagedFile {
	base, dirs, dirIndex := h.strs(rpmTagBaseNames), h.strs(rpmTagDirNames), h.ints(rpmTagDirIndexes)
	modes, flags := h.ints(rpmTagFileModes), h.ints(rpmTagFileFlags)
	owners, groups := h.strs(rpmTagFileUserName), h.strs(rpmTagFileGroupName)
	files := map[string]packagedFile{}
	for i, name := range base {
		if i >= len(dirIndex) || int(dirIndex[i]) >= len(dirs) || i >= len(modes) || i >= len(flags) || i >= len(owners) || i >= len(groups) {
			break
		}
		const noReplaceConfig = rpmFileConfig | rpmFileNoReplace
		files[path.Join(dirs[dirIndex[i]], name)] = packagedFile{
			mode:   unixMode(modes[i]),
			owner:  owners[i],
			group:  groups[i],
			config: flags[i]&noReplaceConfig == noReplaceConfig,
		}
	}
	return files
}

// unixMode converts st_mode bits to an os.FileMode (directories and regular
// files only: the package holds nothing else).
func unixMode(m uint32) os.FileMode {
	mode := os.FileMode(m & 0o777)
	if m&0o170000 == 0o040000 {
		mode |= os.ModeDir
	}
	return mode
}
