package integration_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
)

// stopLimit is how fast the extension must exit when asked to (osqueryd
// sends SIGKILL soon after), and slack absorbs a loaded machine.
const (
	stopLimit = time.Second
	slack     = 2 * time.Second
)

// interval is the --interval the stand-in passes, as osqueryd does.
func interval(m *standin.Manager) time.Duration { return time.Duration(m.Interval) * time.Second }

// waitStderr waits until p has logged want.
func waitStderr(t *testing.T, p *standin.Process, want string) {
	t.Helper()
	deadline := time.Now().Add(registerTimeout)
	for !strings.Contains(p.Stderr(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr lacks %q:\n%s", want, p.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkCleanExit checks that p exits with code 0 within stopLimit,
// deregistered and with its extension socket removed.
func checkCleanExit(t *testing.T, m *standin.Manager, p *standin.Process, ext *standin.Extension) {
	t.Helper()
	if code, _ := waitExit(t, p, stopLimit); code != 0 {
		t.Errorf("exit code %d, want 0\nstderr:\n%s", code, p.Stderr())
	}
	if _, still := m.Extension("fanotify"); still {
		t.Error("still registered after exiting: it did not deregister")
	}
	if _, err := os.Stat(m.ExtensionSocket(ext.UUID)); !os.IsNotExist(err) {
		t.Errorf("extension socket left behind: %v", err)
	}
}

// waitExit waits for p to exit and returns its exit code and how long it took.
func waitExit(t *testing.T, p *standin.Process, limit time.Duration) (int, time.Duration) {
	t.Helper()
	begin := time.Now()
	code, err := p.Wait(limit + slack)
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, p.Stderr())
	}
	took := time.Since(begin)
	if took > limit {
		t.Errorf("exited after %s, want within %s", took, limit)
	}
	return code, took
}

// osqueryd may call an extension as soon as it is registered: by then its
// server listens. (It listens beside osqueryd's socket, then moves there.)
func TestListensBeforeRegistering(t *testing.T) {
	m := standin.New(t)
	listening := make(chan bool, 1)
	m.OnRegister(func() {
		early, _ := filepath.Glob(m.Socket + "~*")
		ok := len(early) == 1
		for _, path := range early {
			conn, err := net.Dial("unix", path)
			if err != nil {
				ok = false
				continue
			}
			conn.Close()
		}
		select {
		case listening <- ok:
		default:
		}
	})
	p, ext := launchUnder(t, m, false)
	if !<-listening {
		t.Error("no socket listening beside osqueryd's when the extension registered")
	}
	if _, err := m.Columns("fanotify_limits"); err != nil {
		t.Errorf("a call at %s: %v\nstderr:\n%s", m.ExtensionSocket(ext.UUID), err, p.Stderr())
	}
	if early, _ := filepath.Glob(m.Socket + "~*"); len(early) != 0 {
		t.Errorf("sockets left beside osqueryd's: %v", early)
	}
}

func TestStopsOnRequest(t *testing.T) {
	stops := map[string]func(*standin.Manager, *standin.Process) error{
		"shutdown": func(m *standin.Manager, _ *standin.Process) error { return m.Shutdown("fanotify") },
		"SIGTERM":  func(_ *standin.Manager, p *standin.Process) error { return p.Signal(syscall.SIGTERM) },
		"SIGINT":   func(_ *standin.Manager, p *standin.Process) error { return p.Signal(syscall.SIGINT) },
	}
	for name, stop := range stops {
		t.Run(name, func(t *testing.T) {
			m, p, ext := launch(t, false)
			if err := stop(m, p); err != nil {
				t.Fatal(err)
			}
			checkCleanExit(t, m, p, ext)
		})
	}
}

// osqueryd may stop an extension that is still waiting for its socket.
func TestStopsWhileWaitingForOsqueryd(t *testing.T) {
	p := standin.Start(t, standin.BuildBinary(t), "--verbose", "--socket", filepath.Join(t.TempDir(), "later.em"), "--timeout", "30")
	waitStderr(t, p, "connecting to osqueryd")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := waitExit(t, p, stopLimit); code != 0 {
		t.Errorf("exit code %d, want 0\nstderr:\n%s", code, p.Stderr())
	}
}

func TestExitsWhenOsquerydIsGone(t *testing.T) {
	m, p, _ := launch(t, false)
	m.Stop()
	if code, _ := waitExit(t, p, 2*interval(m)); code == 0 {
		t.Error("exit code 0, want non-zero")
	}
	if !strings.Contains(p.Stderr(), "osqueryd is gone") {
		t.Errorf("stderr does not say why:\n%s", p.Stderr())
	}
}

// Calls to osqueryd may take minutes (osquery's own SDK waits five), but a
// stop does not wait for them.
func TestStopsWhileOsquerydHangs(t *testing.T) {
	m, p, ext := launch(t, true)
	m.Hang()
	time.Sleep(interval(m) + 500*time.Millisecond) // a health check is stuck by now
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := waitExit(t, p, stopLimit); code != 0 {
		t.Errorf("exit code %d, want 0\nstderr:\n%s", code, p.Stderr())
	}
	if _, err := os.Stat(m.ExtensionSocket(ext.UUID)); !os.IsNotExist(err) {
		t.Errorf("extension socket left behind: %v", err)
	}
}

// osqueryd attaches an extension's tables one by one under its SQL lock: a
// registration answered later than --timeout is still the one osqueryd
// keeps. Giving up on it would leave osqueryd an entry that no one serves,
// and have every retry refused as a duplicate.
func TestWaitsForASlowRegistration(t *testing.T) {
	m := standin.New(t)
	m.Timeout = 1
	m.OnRegister(func() { time.Sleep(time.Duration(m.Timeout)*time.Second + 500*time.Millisecond) })
	p, _ := launchUnder(t, m, false)
	if _, err := m.Columns("fanotify_limits"); err != nil {
		t.Errorf("a call after the registration: %v\nstderr:\n%s", err, p.Stderr())
	}
	if n := m.Rejections("fanotify"); n != 0 {
		t.Errorf("%d registration(s) refused as duplicates: it gave up on the first\nstderr:\n%s", n, p.Stderr())
	}
}

// osqueryd launches its extensions while its extension manager starts, and
// the manager removes every PATH.* it finds as it does: the socket the
// extension listens on before registering must not be one of them.
func TestRegistersWhenLaunchedBeforeOsqueryd(t *testing.T) {
	socket := filepath.Join(socketDir(t), "osquery.em")
	p := standin.Start(t, standin.BuildBinary(t), "--socket", socket, "--timeout", "10", "--interval", "3")
	waitListening(t, p, socket+"~*")
	m := listenAt(t, socket)
	if _, err := m.WaitRegistered("fanotify", registerTimeout); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, p.Stderr())
	}
	if _, err := m.Columns("fanotify_limits"); err != nil {
		t.Errorf("a call after the registration: %v\nstderr:\n%s", err, p.Stderr())
	}
}

// A socket that a crashed osqueryd left refuses connections until the new
// osqueryd replaces it: the extension waits for that, up to --timeout.
func TestWaitsForOsquerydBehindAStaleSocket(t *testing.T) {
	socket := filepath.Join(socketDir(t), "osquery.em")
	deadSocket(t, socket)
	p := standin.Start(t, standin.BuildBinary(t), "--socket", socket, "--timeout", "10", "--interval", "3")
	waitListening(t, p, socket+"~*")
	time.Sleep(500 * time.Millisecond) // refused for a while
	m := listenAt(t, socket)
	if _, err := m.WaitRegistered("fanotify", registerTimeout); err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, p.Stderr())
	}
}

// A socket that accepts but never answers is not osqueryd's yet: waiting
// for it is bounded by --timeout too.
func TestExitsWhenTheSocketNeverAnswers(t *testing.T) {
	socket := filepath.Join(socketDir(t), "osquery.em")
	ln, err := net.Listen("unix", socket) // connections queue, unanswered
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := standin.Start(t, standin.BuildBinary(t), "--socket", socket, "--timeout", "1", "--interval", "1")
	// One ping may start just before --timeout ends and wait it out.
	if code, _ := waitExit(t, p, 2*time.Second+stopLimit); code == 0 {
		t.Error("exit code 0, want non-zero")
	}
	if want := "connecting to osqueryd"; !strings.Contains(p.Stderr(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
	}
}

// osqueryd may stop an extension whose registration it has not answered.
func TestStopsDuringRegistration(t *testing.T) {
	m := standin.New(t)
	registering, release := make(chan struct{}, 1), make(chan struct{})
	t.Cleanup(func() { close(release) })
	m.OnRegister(func() {
		registering <- struct{}{}
		<-release
	})
	p := m.Launch(t, standin.BuildBinary(t), false)
	select {
	case <-registering:
	case <-time.After(registerTimeout):
		t.Fatalf("no registration\nstderr:\n%s", p.Stderr())
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, _ := waitExit(t, p, stopLimit); code != 0 {
		t.Errorf("exit code %d, want 0\nstderr:\n%s", code, p.Stderr())
	}
	if left, _ := filepath.Glob(m.Socket + "~*"); len(left) != 0 {
		t.Errorf("sockets left beside osqueryd's: %v", left)
	}
}

// An instance killed before it registered leaves its early socket, which
// osqueryd does not clean: the next instance removes it, and leaves the
// socket of an instance still listening, or of a live process that has
// bound it but not listened yet.
func TestRemovesAbandonedSockets(t *testing.T) {
	m := standin.New(t)
	abandoned, live, binding := m.Socket+"~4194301", m.Socket+"~4194302", m.Socket+"~"+strconv.Itoa(os.Getpid())
	deadSocket(t, abandoned)
	deadSocket(t, binding)
	ln, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	launchUnder(t, m, false)
	if _, err := os.Lstat(abandoned); !os.IsNotExist(err) {
		t.Errorf("abandoned socket %s left: %v", abandoned, err)
	}
	for _, path := range []string{live, binding} {
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("the socket of a live instance was removed: %v", err)
		}
	}
}

// socketDir is a fresh directory short enough for Unix socket paths.
func socketDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/tmp", "oq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// listenAt starts a manager at socket, stopped when the test ends.
func listenAt(t *testing.T, socket string) *standin.Manager {
	m, err := standin.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// deadSocket leaves a socket at path that nothing accepts on, as a killed
// process does.
func deadSocket(t *testing.T, path string) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

// waitListening waits until p listens on a socket matching pattern.
func waitListening(t *testing.T, p *standin.Process, pattern string) {
	t.Helper()
	deadline := time.Now().Add(registerTimeout)
	for {
		if found, _ := filepath.Glob(pattern); len(found) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens at %s\nstderr:\n%s", pattern, p.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// osqueryd deregisters an extension whose pings failed while it was busy;
// one that lingers then serves nothing (fleetdm/fleet#52093).
func TestExitsWhenDroppedByOsqueryd(t *testing.T) {
	m, p, ext := launch(t, false)
	if !m.Drop("fanotify") {
		t.Fatal("nothing to drop")
	}
	if code, _ := waitExit(t, p, 2*interval(m)); code == 0 {
		t.Error("exit code 0, want non-zero")
	}
	if want := "no longer lists extension uuid"; !strings.Contains(p.Stderr(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
	}
	if _, err := os.Stat(m.ExtensionSocket(ext.UUID)); !os.IsNotExist(err) {
		t.Errorf("extension socket left behind: %v", err)
	}
}

// killAndRelaunch SIGKILLs a registered extension, whose entry lingers in
// the manager, and starts a new one that osqueryd would restart.
func killAndRelaunch(t *testing.T) (*standin.Manager, *standin.Process, *standin.Extension) {
	m, old, ext := launch(t, false)
	old.Kill()
	if _, still := m.Extension("fanotify"); !still {
		t.Fatal("the killed extension's entry did not linger")
	}
	p := m.Launch(t, standin.BuildBinary(t), false)
	deadline := time.Now().Add(registerTimeout)
	for m.Rejections("fanotify") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the new instance never tried to register\nstderr:\n%s", p.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m, p, ext
}

func TestRegistersOnceTheStaleEntryIsDropped(t *testing.T) {
	m, p, old := killAndRelaunch(t)
	time.Sleep(interval(m) / 2) // osqueryd's ping sweep comes later
	if dropped := m.Sweep(); len(dropped) != 1 || dropped[0] != "fanotify" {
		t.Fatalf("sweep dropped %v, want the killed instance", dropped)
	}
	ext, err := m.WaitRegisteredAgain("fanotify", old.UUID, 2*interval(m))
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, p.Stderr())
	}
	if m.Rejections("fanotify") < 2 {
		t.Errorf("registered after %d refusal(s): it did not keep retrying", m.Rejections("fanotify"))
	}
	if dropped := m.Sweep(); len(dropped) != 0 {
		t.Errorf("the new instance (uuid %d) does not answer pings", ext.UUID)
	}
}

func TestGivesUpWhileTheStaleEntryLingers(t *testing.T) {
	m, p, _ := killAndRelaunch(t)
	retry := 2 * interval(m)
	code, took := waitExit(t, p, retry+time.Second)
	if code == 0 {
		t.Error("exit code 0, want non-zero")
	}
	if took < retry-time.Second {
		t.Errorf("gave up after %s, want retries for %s", took, retry)
	}
	if !strings.Contains(p.Stderr(), standin.DuplicateMessage) {
		t.Errorf("stderr lacks %q:\n%s", standin.DuplicateMessage, p.Stderr())
	}
}

// shortManager starts a manager whose socket path is exactly n bytes long.
func shortManager(t *testing.T, n int) *standin.Manager {
	dir := socketDir(t)
	return listenAt(t, filepath.Join(dir, strings.Repeat("s", n-len(dir)-1)))
}

func TestSocketPathLimit(t *testing.T) {
	bin := standin.BuildBinary(t)
	longest := shortManager(t, 97)
	longest.Launch(t, bin, false)
	if _, err := longest.WaitRegistered("fanotify", registerTimeout); err != nil {
		t.Errorf("97-byte socket path: %v", err)
	}

	tooLong := shortManager(t, 98)
	p := tooLong.Launch(t, bin, false)
	if code, _ := waitExit(t, p, registerTimeout); code == 0 {
		t.Error("98-byte socket path: exit code 0, want non-zero")
	}
	if want := "is 98 bytes; at most 97 fit"; !strings.Contains(p.Stderr(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
	}
	if len(tooLong.Extensions()) != 0 {
		t.Error("registered despite the path osqueryd cannot serve")
	}
}

func TestExitsWhenRegistrationIsRefused(t *testing.T) {
	m := standin.New(t)
	m.Reserve("mount_points")
	p := m.Launch(t, standin.BuildBinary(t), false)
	// Refusals other than a duplicate name are final: no retries, which
	// would last two intervals.
	if code, _ := waitExit(t, p, interval(m)); code == 0 {
		t.Error("exit code 0, want non-zero")
	}
	if want := "osqueryd refused the registration: Failed adding registry"; !strings.Contains(p.Stderr(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
	}
}

func TestExitsWhenTheSocketNeverAppears(t *testing.T) {
	dir := t.TempDir()
	p := standin.Start(t, standin.BuildBinary(t), "--socket", filepath.Join(dir, "missing.em"), "--timeout", "1", "--interval", "1")
	if code, _ := waitExit(t, p, time.Second+stopLimit); code == 0 {
		t.Error("exit code 0, want non-zero")
	}
	if want := "connecting to osqueryd"; !strings.Contains(p.Stderr(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
	}
}

func TestArguments(t *testing.T) {
	t.Run("unknown arguments are ignored", func(t *testing.T) {
		_, p, _ := launch(t, false, "--some_future_flag", "value", "--other=1", "positional")
		if want := "ignoring unknown arguments"; !strings.Contains(p.Stderr(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, p.Stderr())
		}
	})
	t.Run("flag=value", func(t *testing.T) {
		m := standin.New(t)
		p := standin.Start(t, standin.BuildBinary(t), "--socket="+m.Socket, "--timeout=3", "--interval=3")
		if _, err := m.WaitRegistered("fanotify", registerTimeout); err != nil {
			t.Fatalf("%v\nstderr:\n%s", err, p.Stderr())
		}
	})
	t.Run("verbose logs registration and calls, quiet does not", func(t *testing.T) {
		mq, quiet, _ := launch(t, false)
		mv, verbose, _ := launch(t, true)
		for _, m := range []*standin.Manager{mq, mv} {
			if _, err := m.Generate("mount_points", ""); err != nil {
				t.Fatal(err)
			}
		}
		waitStderr(t, verbose, fmt.Sprintf(`msg="started by osqueryd" pid=%d`, verbose.Pid()))
		waitStderr(t, verbose, "msg=registered")
		waitStderr(t, verbose, "msg=call registry=table item=mount_points action=generate")
		if strings.Contains(quiet.Stderr(), "level=INFO") || strings.Contains(quiet.Stderr(), "level=DEBUG") {
			t.Errorf("stderr without --verbose logs info:\n%s", quiet.Stderr())
		}
	})
	t.Run("bad config file keeps defaults, and the collector's row says why", func(t *testing.T) {
		cfg := filepath.Join(t.TempDir(), "fanotify.json")
		doc := `{"max_concurrent_generates": 0, "collector": {"enabled": true, "paths": ["/tmp"]}}`
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		m, p, _ := launch(t, false, "--config", cfg)
		if want := `max_concurrent_generates`; !strings.Contains(p.Stderr(), want) {
			t.Errorf("stderr does not name the key %s:\n%s", want, p.Stderr())
		}
		rows := generate(t, m, "fanotify_collector", "")
		want := `configuration file rejected, running on the defaults: config ` + cfg + `: key "max_concurrent_generates"`
		if len(rows) != 1 || rows[0]["status"] != "disabled" || !strings.HasPrefix(rows[0]["error"], want) {
			t.Errorf("fanotify_collector %v, want one disabled row whose error begins %s", rows, want)
		}
	})
	t.Run("missing --socket", func(t *testing.T) {
		p := standin.Start(t, standin.BuildBinary(t), "--timeout", "3")
		if code, _ := waitExit(t, p, time.Second); code != 2 {
			t.Errorf("exit code %d, want 2 (usage)", code)
		}
		if !strings.Contains(p.Stderr(), "--socket is required") {
			t.Errorf("stderr:\n%s", p.Stderr())
		}
	})
}
