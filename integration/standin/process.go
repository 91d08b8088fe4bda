package standin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a launched extension.
type Process struct {
	cmd    *exec.Cmd
	stderr SyncBuffer
	exited chan struct{}
	state  *os.ProcessState
}

// Launch starts bin as osqueryd on Linux autoloads it (launchExtension
// in osquery/core/posix/process.cpp):
//
//	argv[0] "osquery extension: BIN", then --socket PATH --timeout T --interval I [--verbose] [extra...]
//
// with OSQUERY_EXTENSION holding the extension's own pid. The process is
// killed when the test ends; its stderr is logged if the test failed.
func (m *Manager) Launch(t testing.TB, bin string, verbose bool, extra ...string) *Process {
	t.Helper()
	args := []string{"--socket", m.Socket, "--timeout", strconv.Itoa(m.Timeout), "--interval", strconv.Itoa(m.Interval)}
	if verbose {
		args = append(args, "--verbose")
	}
	return Start(t, bin, append(args, extra...)...)
}

// Start runs bin with exactly args after argv[0] "osquery extension: BIN",
// OSQUERY_EXTENSION set to its pid.
func Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	// osqueryd sets OSQUERY_EXTENSION after fork; a shell that execs keeps
	// its pid, so $$ is the extension's pid. bash's exec -a sets argv[0].
	shArgs := append([]string{"-c", `OSQUERY_EXTENSION=$$ exec -a "osquery extension: $0" "$0" "$@"`, bin}, args...)
	p := &Process{cmd: exec.Command("/bin/bash", shArgs...), exited: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	if raceEnabled && os.Getenv("GORACE") == "" {
		// Report a race by exiting 66 at once, and skip the race runtime's
		// 1 s sleep at exit, which would blur exit-time measurements.
		p.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1 atexit_sleep_ms=0")
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", filepath.Base(bin), p.Stderr())
		}
	})
	return p
}

// Pid is the extension's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stderr is everything the extension logged so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 if a signal killed it).
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.exited:
		return p.state.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("pid %d still running after %s", p.Pid(), timeout)
	}
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// SyncBuffer is a bytes.Buffer safe for the writer goroutine and readers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
