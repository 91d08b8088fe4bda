package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const line = extPath + "\n"

// fakeRoot is a temporary root for the maintainer scripts: they prefix every
// path with FANOTIFY_PKG_ROOT.
type fakeRoot struct {
	t   *testing.T
	dir string
}

func newFakeRoot(t *testing.T) fakeRoot {
	return fakeRoot{t: t, dir: t.TempDir()}
}

func (r fakeRoot) loadPath() string {
	return filepath.Join(r.dir, "etc/osquery/extensions.load")
}

func (r fakeRoot) writeLoad(content string, mode os.FileMode) {
	r.t.Helper()
	if err := os.MkdirAll(filepath.Dir(r.loadPath()), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(r.loadPath(), []byte(content), mode); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Chmod(r.loadPath(), mode); err != nil { // WriteFile's mode is masked by umask
		r.t.Fatal(err)
	}
}

func (r fakeRoot) load() string {
	r.t.Helper()
	data, err := os.ReadFile(r.loadPath())
	if err != nil {
		r.t.Fatal(err)
	}
	return string(data)
}

// run executes a maintainer script with /bin/sh (dash on Debian, as dpkg
// and rpm run them) and the arguments the package manager passes.
func (r fakeRoot) run(script string, args ...string) {
	r.t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{filepath.Join("scripts", script)}, args...)...)
	cmd.Env = append(os.Environ(), "FANOTIFY_PKG_ROOT="+r.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("%s %s: %v\n%s", script, strings.Join(args, " "), err, out)
	}
}

// The package managers' arguments for each step of a package's life.
var (
	debInstall  = []string{"configure"}
	rpmInstall  = []string{"1"}
	rpmUpgraded = []string{"2"}
)

func TestPostInstallCreatesMissingList(t *testing.T) {
	r := newFakeRoot(t)
	r.run("postinstall.sh", debInstall...)
	if got := r.load(); got != line {
		t.Errorf("extensions.load = %q, want %q", got, line)
	}
}

func TestPostInstallTwiceAddsOneLine(t *testing.T) {
	for _, args := range [][]string{debInstall, rpmInstall, rpmUpgraded} {
		r := newFakeRoot(t)
		other := "# osquery extensions\n/opt/other/other.ext\n"
		r.writeLoad(other, 0o644)
		r.run("postinstall.sh", args...)
		r.run("postinstall.sh", args...)
		if got, want := r.load(), other+line; got != want {
			t.Errorf("after two postinstall %v: %q, want %q", args, got, want)
		}
	}
}

func TestPostInstallTerminatesLastLine(t *testing.T) {
	r := newFakeRoot(t)
	r.writeLoad("/opt/other/other.ext", 0o644)
	r.run("postinstall.sh", debInstall...)
	if got, want := r.load(), "/opt/other/other.ext\n"+line; got != want {
		t.Errorf("extensions.load = %q, want %q", got, want)
	}
}

func TestPostInstallKeepsExistingLine(t *testing.T) {
	r := newFakeRoot(t)
	existing := line + "/opt/other/other.ext\n"
	r.writeLoad(existing, 0o644)
	r.run("postinstall.sh", debInstall...)
	if got := r.load(); got != existing {
		t.Errorf("extensions.load = %q, want it unchanged %q", got, existing)
	}
}

// An upgrade runs the old package's postremove with "upgrade" (deb) or 1
// (rpm) and the new package's postinstall: the line must survive.
func TestUpgradeKeepsLine(t *testing.T) {
	upgrades := map[string][][]string{
		"deb": {{"postremove.sh", "upgrade", "0.2.0"}, {"postinstall.sh", "configure", "0.1.0"}},
		"rpm": {{"postinstall.sh", "2"}, {"postremove.sh", "1"}},
	}
	for format, steps := range upgrades {
		r := newFakeRoot(t)
		other := "/opt/other/other.ext\n"
		r.writeLoad(other, 0o644)
		r.run("postinstall.sh", debInstall...)
		for _, step := range steps {
			r.run(step[0], step[1:]...)
		}
		if got, want := r.load(), other+line; got != want {
			t.Errorf("%s upgrade: extensions.load = %q, want %q", format, got, want)
		}
	}
}

func TestRemoveDeletesOnlyOurLine(t *testing.T) {
	for _, arg := range []string{"remove", "purge", "0"} {
		r := newFakeRoot(t)
		before := "# osquery extensions\n/opt/a.ext\n" + line + "; /opt/b.ext\n/opt/c.ext\n"
		r.writeLoad(before, 0o600)
		r.run("postremove.sh", arg)
		if got, want := r.load(), strings.Replace(before, line, "", 1); got != want {
			t.Errorf("postremove %s: %q, want %q", arg, got, want)
		}
		if info, err := os.Stat(r.loadPath()); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("postremove %s changed the file mode: %v %v", arg, info.Mode(), err)
		}
	}
}

func TestInstallThenRemoveRestoresList(t *testing.T) {
	r := newFakeRoot(t)
	before := "# osquery extensions\n/opt/other/other.ext\n"
	r.writeLoad(before, 0o644)
	r.run("postinstall.sh", debInstall...)
	r.run("postremove.sh", "remove")
	if got := r.load(); got != before {
		t.Errorf("extensions.load = %q, want the original %q", got, before)
	}
}

func TestRemoveOfOnlyLineLeavesEmptyList(t *testing.T) {
	r := newFakeRoot(t)
	r.run("postinstall.sh", debInstall...)
	r.run("postremove.sh", "0")
	if got := r.load(); got != "" {
		t.Errorf("extensions.load = %q, want empty", got)
	}
}

func TestRemoveWithoutListCreatesNothing(t *testing.T) {
	r := newFakeRoot(t)
	r.run("postremove.sh", "purge")
	if _, err := os.Stat(r.loadPath()); !os.IsNotExist(err) {
		t.Errorf("postremove created %s: %v", r.loadPath(), err)
	}
}

func TestRemoveLeavesForeignListUntouched(t *testing.T) {
	r := newFakeRoot(t)
	before := "/opt/other/other.ext" // no trailing newline, and not our line
	r.writeLoad(before, 0o644)
	r.run("postremove.sh", "remove")
	if got := r.load(); got != before {
		t.Errorf("extensions.load = %q, want it untouched %q", got, before)
	}
}

// osqueryd trims blanks and \r around each line of extensions.load before
// loading the path: each of these lines loads fanotify.ext.
var trimmedVariants = []string{extPath + "\r\n", "  " + extPath + " \n", "\t" + extPath + "\t\r\n"}

func TestPostInstallFindsLineOsquerydTrims(t *testing.T) {
	for _, variant := range trimmedVariants {
		r := newFakeRoot(t)
		existing := "/opt/other/other.ext\r\n" + variant
		r.writeLoad(existing, 0o644)
		r.run("postinstall.sh", debInstall...)
		if got := r.load(); got != existing {
			t.Errorf("with %q listed: extensions.load = %q, want it unchanged", variant, got)
		}
	}
}

func TestRemoveDeletesLinesOsquerydTrims(t *testing.T) {
	r := newFakeRoot(t)
	// Lines osqueryd reads as other paths stay.
	others := []string{"# osquery extensions\r\n", "/opt/a.ext\r\n", "# " + extPath + "\r\n", strings.TrimSuffix(extPath, ".ext") + "Xext\r\n", extPath + ".old\r\n"}
	r.writeLoad(strings.Join(append(slices.Clone(others), trimmedVariants...), ""), 0o644)
	r.run("postremove.sh", "remove")
	if got, want := r.load(), strings.Join(others, ""); got != want {
		t.Errorf("extensions.load = %q, want %q", got, want)
	}
}

// A dangling symlink in place of extensions.load: the list is created where
// the link points, and the link stays.
func TestPostInstallWritesThroughDanglingSymlink(t *testing.T) {
	r := newFakeRoot(t)
	if err := os.MkdirAll(filepath.Dir(r.loadPath()), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../srv/osquery/extensions.load", r.loadPath()); err != nil {
		t.Fatal(err)
	}
	r.run("postinstall.sh", debInstall...)
	target, err := os.ReadFile(filepath.Join(r.dir, "srv/osquery/extensions.load"))
	if err != nil || string(target) != line {
		t.Errorf("link target = %q (%v), want %q", target, err, line)
	}
	if info, err := os.Lstat(r.loadPath()); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Errorf("extensions.load is no longer a symlink: %v %v", info.Mode(), err)
	}
	r.run("postremove.sh", "purge")
	if got := r.load(); got != "" {
		t.Errorf("after removal the list through the link = %q, want empty", got)
	}
}
