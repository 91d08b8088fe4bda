// Package packaging tests the .deb and .rpm built by `make package` and their
// maintainer scripts.
package packaging

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/integration/content"
)

const (
	extPath    = "/usr/lib/osquery/extensions/fanotify.ext"
	extDir     = "/usr/lib/osquery/extensions"
	extDirBase = "/usr/lib/osquery"
	configPath = "/etc/osquery/fanotify.json"
	packDir    = "/usr/share/osquery-fanotify"
	packPath   = packDir + "/fanotify.pack.json"
)

// packagedFile is what both package formats say about one file.
type packagedFile struct {
	mode         os.FileMode
	owner, group string
	config       bool // deb conffile / rpm %config(noreplace)
	content      []byte
}

// buildPackages runs `make package` for the host's architecture only, into a
// temporary directory, and returns that directory.
func buildPackages(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("make", "-C", "../..", "package", "PKG_ARCHES="+runtime.GOARCH, "PKG_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make package: %v\n%s", err, out)
	}
	return dir
}

func onlyFile(t *testing.T, dir, pattern string) string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(matches) != 1 {
		t.Fatalf("want one %s in %s, got %v (%v)", pattern, dir, matches, err)
	}
	return matches[0]
}

func TestPackages(t *testing.T) {
	dir := buildPackages(t)
	rpmArch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]

	t.Run("deb", func(t *testing.T) {
		files, scripts := readDeb(t, onlyFile(t, dir, "*_"+runtime.GOARCH+".deb"))
		checkFiles(t, files)
		checkELF(t, files[extPath].content)
		checkScripts(t, scripts["postinst"], scripts["postrm"])
	})
	t.Run("rpm", func(t *testing.T) {
		h := readRPM(t, onlyFile(t, dir, "*."+rpmArch+".rpm"))
		if got := h.str(rpmTagArch); got != rpmArch {
			t.Errorf("rpm arch %q, want %q", got, rpmArch)
		}
		checkFiles(t, h.files())
		checkScripts(t, h.str(rpmTagPostIn), h.str(rpmTagPostUn))
	})
}

// checkFiles asserts the payload holds exactly the extension, its directory,
// the configuration file and the osquery pack, with the modes and owners
// osqueryd insists on.
func checkFiles(t *testing.T, files map[string]packagedFile) {
	t.Helper()
	want := map[string]packagedFile{
		extDir:     {mode: os.ModeDir | 0o755, owner: "root", group: "root"},
		extDirBase: {mode: os.ModeDir | 0o755, owner: "root", group: "root"},
		extPath:    {mode: 0o755, owner: "root", group: "root"},
		configPath: {mode: 0o644, owner: "root", group: "root", config: true},
		packDir:    {mode: os.ModeDir | 0o755, owner: "root", group: "root"},
		packPath:   {mode: 0o644, owner: "root", group: "root"},
	}
	for path, w := range want {
		got, ok := files[path]
		if !ok {
			t.Errorf("%s missing from the package", path)
			continue
		}
		if got.mode != w.mode || got.owner != w.owner || got.group != w.group || got.config != w.config {
			t.Errorf("%s: mode %v %s:%s config=%v, want mode %v %s:%s config=%v",
				path, got.mode, got.owner, got.group, got.config, w.mode, w.owner, w.group, w.config)
		}
	}
	for path, f := range files {
		if _, ok := want[path]; !ok && !f.mode.IsDir() {
			t.Errorf("unexpected file %s in the package", path)
		}
	}
	if cfg := files[configPath].content; cfg != nil {
		checkShippedConfig(t, cfg)
	}
	if pack := files[packPath].content; pack != nil {
		checkShippedPack(t, pack)
	}
}

// checkShippedPack asserts the packaged osquery pack is the one `make
// content` generates.
func checkShippedPack(t *testing.T, data []byte) {
	t.Helper()
	def, err := content.Load()
	if err != nil {
		t.Fatal(err)
	}
	want, err := def.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("packaged %s is not the pack generated from queries.yml", packPath)
	}
}

// checkShippedConfig asserts the packaged configuration is the one in the
// repository, that the extension accepts it, and that it leaves the
// collector off.
func checkShippedConfig(t *testing.T, data []byte) {
	t.Helper()
	source, err := os.ReadFile("fanotify.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, source) {
		t.Errorf("packaged %s differs from integration/packaging/fanotify.json", configPath)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("shipped configuration rejected: %v", err)
	}
	if cfg.Collector.Enabled {
		t.Error("shipped configuration enables the collector")
	}
}

func checkELF(t *testing.T, binary []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		t.Fatalf("%s is not an ELF binary: %v", extPath, err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if f.Machine != want {
		t.Errorf("%s built for %v, want %v", extPath, f.Machine, want)
	}
	// CGO_ENABLED=0: a static binary has no interpreter.
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked", extPath)
		}
	}
}

// checkScripts asserts the package runs the maintainer scripts this
// directory tests.
func checkScripts(t *testing.T, postInstall, postRemove string) {
	t.Helper()
	for name, got := range map[string]string{"postinstall.sh": postInstall, "postremove.sh": postRemove} {
		want, err := os.ReadFile(filepath.Join("scripts", name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
			t.Errorf("packaged %s differs from scripts/%s:\n%s", name, name, got)
		}
	}
}

// readDeb returns the data files and the control scripts of a .deb.
func readDeb(t *testing.T, debPath string) (map[string]packagedFile, map[string]string) {
	t.Helper()
	data, err := os.ReadFile(debPath)
	if err != nil {
		t.Fatal(err)
	}
	members, err := readAr(data)
	if err != nil {
		t.Fatalf("%s: %v", debPath, err)
	}
	control, err := readTarGz(members["control.tar.gz"])
	if err != nil {
		t.Fatalf("%s control.tar.gz: %v", debPath, err)
	}
	payload, err := readTarGz(members["data.tar.gz"])
	if err != nil {
		t.Fatalf("%s data.tar.gz: %v", debPath, err)
	}
	conffiles := strings.Fields(string(control["/conffiles"].content))
	files := map[string]packagedFile{}
	for name, f := range payload {
		f.config = slices.Contains(conffiles, name)
		files[name] = f
	}
	scripts := map[string]string{}
	for name, f := range control {
		scripts[path.Base(name)] = string(f.content)
	}
	return files, scripts
}

// readAr splits an ar archive (the .deb container) into its members.
func readAr(data []byte) (map[string][]byte, error) {
	const magic, headerLen = "!<arch>\n", 60
	if !bytes.HasPrefix(data, []byte(magic)) {
		return nil, errors.New("not an ar archive")
	}
	members := map[string][]byte{}
	for off := len(magic); off+headerLen <= len(data); {
		header := data[off : off+headerLen]
		name := strings.TrimSuffix(strings.TrimSpace(string(header[:16])), "/")
		var size int
		if _, err := fmt.Sscan(string(header[48:58]), &size); err != nil || off+headerLen+size > len(data) {
			return nil, fmt.Errorf("ar member %q: bad size", name)
		}
		off += headerLen
		members[name] = data[off : off+size]
		off += size + size%2
	}
	return members, nil
}

// readTarGz returns the entries of a tar.gz keyed by absolute path
// ("./etc/x" and "etc/x" both become "/etc/x").
func readTarGz(data []byte) (map[string]packagedFile, error) {
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	files := map[string]packagedFile{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[path.Clean("/"+h.Name)] = packagedFile{mode: h.FileInfo().Mode(), owner: h.Uname, group: h.Gname, content: content}
	}
}

// TestREADMENamesPackagedPack keeps the README's pack configuration on the
// path the packages install the pack at.
func TestREADMENamesPackagedPack(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := `"packs": {"fanotify": "` + packPath + `"}`; !strings.Contains(string(readme), want) {
		t.Errorf("README.md lacks the pack configuration %s", want)
	}
}
