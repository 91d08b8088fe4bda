package integration_test

import (
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
)

// bigNamespace starts a private mount namespace holding 2^doublings mounts
// (each rbind of a tmpfs onto a directory inside it doubles them), so that
// a mount_points generate over it takes seconds. It returns the namespace
// inode; the mounts vanish with the namespace when the test ends.
func bigNamespace(t *testing.T, doublings int) string {
	t.Helper()
	pid := fanotifytest.PrivateMountNamespace(t)
	const script = `set -e
dir=$(mktemp -d)
mount -t tmpfs big "$dir"
for i in $(seq "$1"); do mkdir "$dir/d$i"; done
for i in $(seq "$1"); do mount --rbind "$dir" "$dir/d$i"; done`
	if out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-m", "--", "sh", "-c", script, "sh", strconv.Itoa(doublings)).CombinedOutput(); err != nil {
		t.Fatalf("mounting: %v: %s", err, out)
	}
	return mntNS(t, pid)
}

// osqueryd stops extensions whatever they are doing: a stop that arrives
// during a generate of seconds exits within the budget, with code 0, and
// deregisters; osqueryd vanishing meanwhile is noticed at the next ping.
func TestStopsDuringLongGenerate(t *testing.T) {
	ns := bigNamespace(t, 16)
	stops := map[string]func(*standin.Manager, *standin.Process) error{
		"shutdown": func(m *standin.Manager, _ *standin.Process) error { return m.Shutdown("fanotify") },
		"SIGTERM":  func(_ *standin.Manager, p *standin.Process) error { return p.Signal(syscall.SIGTERM) },
		// osqueryd gone: noticed at the next ping, then exit 1.
		"osqueryd gone": func(m *standin.Manager, _ *standin.Process) error { m.Stop(); return nil },
	}
	for name, stop := range stops {
		t.Run(name, func(t *testing.T) {
			m, p, ext := launch(t, false)
			generated := make(chan error, 1)
			go func() {
				_, err := m.Generate("mount_points", equalsContext(t, "mnt_ns", ns))
				generated <- err
			}()
			select {
			case err := <-generated:
				t.Fatalf("the generate over %s was not long enough to stop during it (err %v)", ns, err)
			case <-time.After(100 * time.Millisecond): // the request has reached the extension
			}
			if err := stop(m, p); err != nil {
				t.Fatal(err)
			}
			if name == "osqueryd gone" {
				if code, _ := waitExit(t, p, interval(m)+stopLimit); code == 0 {
					t.Errorf("exit code 0, want non-zero\nstderr:\n%s", p.Stderr())
				}
				return
			}
			checkCleanExit(t, m, p, ext)
			t.Logf("the generate in flight ended with: %v", <-generated)
		})
	}
}
