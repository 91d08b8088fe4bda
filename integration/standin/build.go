package standin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// BuildVersion is the version BuildBinary stamps into the binary, the way
// the Makefile does (-X main.version).
const BuildVersion = "0.0.0-standin"

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// BuildBinary builds ./extension into a temporary directory once per test
// binary and returns the path of fanotify.ext. When the tests run with
// -race, so is the extension built: a data race then makes it exit 66.
func BuildBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "fanotify-ext")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "fanotify.ext")
		build.err = goBuild(build.bin)
	})
	if build.err != nil {
		t.Fatalf("building fanotify.ext: %v", build.err)
	}
	return build.bin
}

func goBuild(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	// No VCS stamp: a checkout owned by another user would fail the build.
	args := []string{"build", "-buildvcs=false", "-o", out, "-ldflags", "-X main.version=" + BuildVersion}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./extension")...)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, output)
	}
	return nil
}

// moduleRoot finds go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Main runs the tests and removes the binary BuildBinary made:
//
//	func TestMain(m *testing.M) { os.Exit(standin.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	return code
}
