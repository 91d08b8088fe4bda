// Package procfs reads what the kernel publishes about fanotify and inotify
// in /proc: fdinfo, mountinfo, sysctls and process identity. It only reads;
// parsers take bytes so they can be tested with fixtures from testdata/.
package procfs

import "path/filepath"

// FS is a proc filesystem mounted at Root ("/proc" on a live host, a
// fixture tree in tests).
type FS struct {
	Root string
}

// DefaultRoot is where the live proc filesystem is mounted.
const DefaultRoot = "/proc"

// NewFS returns an FS rooted at root.
func NewFS(root string) FS { return FS{Root: root} }

// Path joins elem below the root.
func (fs FS) Path(elem ...string) string {
	return filepath.Join(append([]string{fs.Root}, elem...)...)
}
