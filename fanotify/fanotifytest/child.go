package fanotifytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// childEnv names the test a re-executed test binary is to run as the child
// half of a test (inside a user namespace or as another uid).
const childEnv = "FANOTIFY_TEST_CHILD"

// IsChild reports whether this process is the child half of test t.
func IsChild(t *testing.T) bool { return os.Getenv(childEnv) == t.Name() }

// ChildCommand prepares the child half of test t: this test binary run by
// wrapper (e.g. unshare -U -r) as uid (nil: unchanged). The binary is a
// copy in a directory every uid can read, since the wrapper may switch uid.
func ChildCommand(t *testing.T, uid *uint32, wrapper ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := sharedDir(t)
	exe = copyExecutable(t, exe, dir)
	args := append(wrapper[1:], exe, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd := exec.Command(wrapper[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name(), "TMPDIR="+dir)
	if uid != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: *uid, Gid: *uid}}
	}
	return cmd
}

// RunChild runs the child half of t to its end and fails t with the
// child's output if it failed.
func RunChild(t *testing.T, uid *uint32, wrapper ...string) {
	t.Helper()
	out, err := ChildCommand(t, uid, wrapper...).CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// sharedDir is a temporary directory every uid can use.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fanotify-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyExecutable(t *testing.T, exe, dir string) string {
	t.Helper()
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(exe))
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
