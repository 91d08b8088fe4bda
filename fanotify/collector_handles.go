package fanotify

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// handleKey returns path's fsid and file handle laid out as a FID record
// carries them (fsid, handle_bytes, handle_type, f_handle), as the reader
// keys handles; "" when the filesystem cannot encode a handle. Taking a
// handle needs no privilege, unlike opening one.
func (c *Collector) handleKey(path string) string {
	if !c.fidMode {
		return ""
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return ""
	}
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, path, 0)
	if err != nil {
		return ""
	}
	fsid := fsidKey(st.Fsid.Val[0], st.Fsid.Val[1])
	key := append(fsid[:], make([]byte, 8)...)
	binary.NativeEndian.PutUint32(key[8:], uint32(h.Size()))
	binary.NativeEndian.PutUint32(key[12:], uint32(h.Type()))
	return string(append(key, h.Bytes()...))
}

// markedPath names a handle that is one of the marked paths.
// open_by_handle_at needs CAP_DAC_READ_SEARCH in the initial user namespace;
// without it these are the only handles that get a path, and all an inode
// mark (the only mark allowed then) needs: its directory, or its file.
func (c *Collector) markedPath(key []byte) (string, bool) {
	for _, w := range c.watches {
		if w.handle != "" && w.handle == string(key) {
			return w.match, true
		}
	}
	return "", false
}
