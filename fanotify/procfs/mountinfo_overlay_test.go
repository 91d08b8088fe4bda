package procfs

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// overlayEnv tells the test binary, run again as a helper, where to mount.
const overlayEnv = "PROCFS_OVERLAY_HELPER_DIR"

// TestOverlayHelperProcess is not a test: started by
// TestMountsOverlayWithManyLayers in a new mount namespace, it mounts an
// overlayfs of hundreds of long-named layers, says "mounted" and waits for
// its stdin to close.
func TestOverlayHelperProcess(t *testing.T) {
	dir := os.Getenv(overlayEnv)
	if dir == "" {
		return
	}
	if err := mountOverlay(dir, 350); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("mounted")
	bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

// mountOverlay mounts a read-only overlayfs of n lower layers on dir/m,
// each added with its own fsconfig call: mount(2) takes one page of options.
func mountOverlay(dir string, n int) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	fs, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	for i := range n {
		layer := filepath.Join(dir, fmt.Sprintf("%03d", i)+strings.Repeat("l", 200-len(dir)))
		if err := os.Mkdir(layer, 0o755); err != nil {
			return err
		}
		if err := unix.FsconfigSetString(fs, "lowerdir+", layer); err != nil {
			return fmt.Errorf("lowerdir+ %s: %w", layer, err)
		}
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return fmt.Errorf("creating the overlay: %w", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	target := filepath.Join(dir, "m")
	if err := os.Mkdir(target, 0o755); err != nil {
		return err
	}
	return unix.MoveMount(mnt, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH)
}

// The kernel writes an overlayfs of many layers as one mountinfo line far
// over 64 KiB; Mounts reads it whole.
func TestMountsOverlayWithManyLayers(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOverlayHelperProcess$")
	cmd.Env = append(os.Environ(), overlayEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "mounted\n" {
		t.Skipf("cannot mount an overlayfs of many layers here: %q", line)
	}

	mounts, err := NewFS(DefaultRoot).Mounts(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		if m.Mountpoint == filepath.Join(dir, "m") {
			if m.FSType != "overlay" || len(m.VFSOptions) <= 64<<10 || !strings.Contains(m.VFSOptions, filepath.Join(dir, "349")) {
				t.Errorf("overlay mount %s with %d bytes of options, want overlay options over 64 KiB naming the last layer", m.FSType, len(m.VFSOptions))
			}
			return
		}
	}
	t.Errorf("no overlay mount on %s among %d mounts", filepath.Join(dir, "m"), len(mounts))
}
