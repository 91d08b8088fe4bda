package integration_test

import (
	"os"
	"syscall"
	"testing"
)

// Anyone who can connect to the extension socket can read every table,
// which shows other users' processes: only the owner (osqueryd's user) may,
// whatever umask osqueryd runs with.
func TestExtensionSocketOwnerOnly(t *testing.T) {
	old := syscall.Umask(0)
	m, _, ext := launch(t, false)
	syscall.Umask(old)
	fi, err := os.Stat(m.ExtensionSocket(ext.UUID))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("extension socket mode %v: group or others may connect", perm)
	}
}
