package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	osqueryclient "github.com/osquery/osquery-go"
	"github.com/osquery/osquery-go/gen/osquery"
	"github.com/osquery/osquery-go/transport"
)

// duplicateMessage is osqueryd's answer while an extension of the same name
// is registered, e.g. our own previous instance that was SIGKILLed and that
// osqueryd has not yet noticed.
const duplicateMessage = "Duplicate extension registered"

// maxBackoff caps the wait between registration attempts: an attempt costs
// osqueryd little, and the sooner the extension retries after osqueryd
// drops a stale entry, the sooner its tables are back.
const maxBackoff = time.Second

// stopStep bounds each step of exiting (finishing a registration in flight,
// deregistering, closing the server), so that a stuck osqueryd cannot keep
// the extension past its 1 s budget.
const stopStep = 250 * time.Millisecond

// callTimeout bounds each call to osqueryd, as in osquery's own extension
// SDK (EXManagerClient: five minutes). osqueryd attaches an extension's
// tables one at a time under its SQL lock, so a registration can take
// seconds on a busy host; a client giving up sooner leaves osqueryd holding
// a registration that no one serves, and every retry is refused as a
// duplicate. --timeout bounds waiting for osqueryd's socket only.
const callTimeout = 5 * time.Minute

// connectRetry is the pause between attempts to reach osqueryd's socket
// (osquery's extensions wait 20 ms).
const connectRetry = 20 * time.Millisecond

// connectivityCheck is how often an in-flight call checks that osqueryd is
// still connected; thrift's default of 5 ms costs syscalls for nothing.
const connectivityCheck = 100 * time.Millisecond

// checkSocketPath rejects paths too long for the listening socket: osqueryd
// appends ".<uuid>" and Linux allows 107 bytes.
func checkSocketPath(path string) error {
	if n := len(path); n > osqueryclient.MaxSocketPathCharacters {
		return fmt.Errorf("socket path %s is %d bytes; at most %d fit once osqueryd appends .<uuid> (Linux allows 107)",
			path, n, osqueryclient.MaxSocketPathCharacters)
	}
	return nil
}

// serve registers with osqueryd, serves calls, and returns the exit code:
// 0 when asked to stop (shutdown(), SIGTERM, SIGINT), 1 when osqueryd is gone,
// dropped the extension, or refused to register it.
func serve(opts options, h *handler, log *slog.Logger) int {
	thrift.ServerConnectivityCheckInterval = connectivityCheck
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	failed := make(chan error, 1)
	fail := func(err error) {
		select {
		case failed <- err:
		default:
		}
	}
	var live atomic.Pointer[session]
	started := make(chan struct{}) // closed once start has returned
	// A stop may come while the early socket waits for a registration.
	early := earlySocket(opts.socket)
	defer os.Remove(early)
	go func() {
		s, err := start(ctx, opts, early, h, log, fail)
		if err != nil {
			close(started)
			fail(err)
			return
		}
		live.Store(s)
		close(started)
		if err := s.watch(ctx); err != nil {
			fail(err)
		}
	}()

	select {
	case err := <-failed:
		log.Error("exiting", "err", err)
		if s := live.Load(); s != nil {
			s.close(false)
		}
		return 1
	case <-ctx.Done():
		log.Info("exiting on signal")
	case <-h.shutdown:
		log.Info("exiting: osqueryd called shutdown")
	}
	// A stop may race a registration that has just succeeded (osqueryd can
	// call shutdown() as soon as the socket exists): wait for it briefly so
	// that it is undone too. One stuck longer is left to osqueryd's pings.
	within(stopStep, func() { <-started })
	if s := live.Load(); s != nil {
		s.close(true)
	}
	return 0
}

// session is one registration with osqueryd and the server answering it.
type session struct {
	client   *osqueryclient.ExtensionManagerClient
	uuid     osquery.ExtensionRouteUUID
	server   *thrift.TSimpleServer
	path     string // the server's socket, PATH.<uuid>
	interval time.Duration
	log      *slog.Logger
}

// start listens, registers and serves on PATH.<uuid>. osqueryd may call an
// extension the moment it is registered (a query held by
// --extensions_require), and a socket not listening yet would refuse it:
// the server listens first, beside osqueryd's socket, at early, and moves
// to PATH.<uuid> once the registration has named it. Serving errors that
// happen later are reported through fail.
func start(ctx context.Context, opts options, early string, h *handler, log *slog.Logger, fail func(error)) (*session, error) {
	removeAbandonedSockets(opts.socket, log)
	server, err := listen(early, h)
	if err != nil {
		return nil, err
	}
	client, uuid, err := register(ctx, opts, h.registry(), log)
	if err != nil {
		_ = server.Stop()
		return nil, err
	}
	s := &session{client: client, uuid: uuid, server: server, path: fmt.Sprintf("%s.%d", opts.socket, uuid),
		interval: opts.interval, log: log}
	if err := moveSocket(early, s.path); err != nil {
		s.close(true)
		return nil, err
	}
	go func() {
		if err := s.server.AcceptLoop(); err != nil {
			fail(fmt.Errorf("serving %s: %w", s.path, err))
		}
	}()
	log.Info("registered", "uuid", uuid, "socket", s.path, "tables", len(h.routes))
	return s, nil
}

// earlySocket is where the server listens until osqueryd names its socket:
// PATH~PID. Not PATH.~PID: osqueryd's extension manager removes every
// PATH.* as it starts (removeStalePaths), which an extension launched
// beside it would race. It fits wherever PATH.<uuid> does (checkSocketPath).
func earlySocket(socket string) string {
	return fmt.Sprintf("%s~%d", socket, os.Getpid())
}

// removeAbandonedSockets removes the early sockets of instances killed
// before they moved them (osqueryd only cleans PATH.*): those of processes
// that are gone, and that refuse connections. One of a live process may
// refuse for a moment, between its bind and its listen.
func removeAbandonedSockets(socket string, log *slog.Logger) {
	dir, prefix := filepath.Split(socket)
	entries, err := os.ReadDir(filepath.Clean(dir))
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix+"~")
		pid, err := strconv.Atoi(rest)
		if !ok || err != nil || e.Type()&fs.ModeSocket == 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		path := filepath.Join(dir, e.Name())
		conn, err := net.Dial("unix", path)
		if err == nil {
			conn.Close()
			continue
		}
		if errors.Is(err, syscall.ECONNREFUSED) && os.Remove(path) == nil {
			log.Debug("removed an abandoned socket", "path", path)
		}
	}
}

// moveSocket renames the listening socket at from to path, in place of a
// socket a killed process left there.
func moveSocket(from, path string) error {
	if err := removeStaleSocket(path); err != nil {
		return err
	}
	return os.Rename(from, path)
}

// register announces the tables to osqueryd. Waiting for its socket is
// bounded by --timeout; a refused or failed registration is retried for two
// health intervals, long enough for osqueryd's ping sweep to drop a stale
// entry of ours, then given up.
func register(ctx context.Context, opts options, registry osquery.ExtensionRegistry, log *slog.Logger) (*osqueryclient.ExtensionManagerClient, osquery.ExtensionRouteUUID, error) {
	info := &osquery.InternalExtensionInfo{Name: extensionName, Version: version}
	var deadline time.Time
	backoff := 200 * time.Millisecond
	for {
		client, err := connect(ctx, opts, log)
		if err != nil {
			return nil, 0, err
		}
		status, err := client.RegisterExtension(info, registry)
		if err == nil && status.Code == 0 {
			return client, status.UUID, nil
		}
		client.Close()
		if err == nil {
			err = errors.New(status.Message)
			if status.Message != duplicateMessage {
				return nil, 0, fmt.Errorf("osqueryd refused the registration: %w", err)
			}
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(2 * opts.interval)
		}
		wait := min(backoff, time.Until(deadline))
		if wait <= 0 {
			return nil, 0, fmt.Errorf("registering with osqueryd: %w (retried for %s)", err, 2*opts.interval)
		}
		log.Info("registration failed, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// connect waits up to --timeout for osqueryd's socket to answer a ping, as
// osquery's own extensions do: the socket of an osqueryd that is starting,
// or one that a crashed osqueryd left, exists before anything accepts on it.
func connect(ctx context.Context, opts options, log *slog.Logger) (*osqueryclient.ExtensionManagerClient, error) {
	log.Debug("connecting to osqueryd", "socket", opts.socket, "timeout", opts.timeout)
	deadline := time.Now().Add(opts.timeout)
	for {
		err := probe(opts.socket, opts.timeout)
		if err == nil {
			return osqueryclient.NewClient(opts.socket, callTimeout)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connecting to osqueryd: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(connectRetry):
		}
	}
}

// probe pings osqueryd's socket, waiting at most timeout for the answer:
// a socket that accepts but never answers is not osqueryd's yet.
func probe(socket string, timeout time.Duration) error {
	// NewClient would wait for the socket for as long as timeout.
	if _, err := os.Stat(socket); err != nil {
		return err
	}
	client, err := osqueryclient.NewClient(socket, timeout)
	if err != nil {
		return err
	}
	defer client.Close()
	_, err = client.Ping()
	return err
}

// listen opens the extension socket. Responses go through a buffer so that
// large results are written in few syscalls.
func listen(path string, h *handler) (*thrift.TSimpleServer, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	sock, err := transport.OpenServer(path, 0)
	if err != nil {
		return nil, err
	}
	processor := osquery.NewExtensionProcessor(h)
	processor.AddToProcessorMap("call", callProcessor{h})
	server := thrift.NewTSimpleServer4(processor, sock,
		thrift.NewTBufferedTransportFactory(64<<10), thrift.NewTBinaryProtocolFactoryConf(nil))
	// Whoever can connect reads every table, other users' processes
	// included: the socket is born owner-only, whatever umask osqueryd has.
	// Nothing else in the extension creates files meanwhile.
	umask := syscall.Umask(0o077)
	err = server.Listen()
	syscall.Umask(umask)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return server, nil
}

// removeStaleSocket removes a socket left at path by a killed process, which
// would otherwise make listening fail.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket", path)
	}
	return os.Remove(path)
}

// watch checks every interval that osqueryd lives and still lists this
// extension. It returns nil when ctx ends.
func (s *session) watch(ctx context.Context) error {
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := s.check(); err != nil {
			return err
		}
	}
}

// check pings osqueryd and looks for our UUID. osqueryd deregisters an
// extension whose pings fail while it is busy; tables of an extension that
// lingers after that are gone for good, so exiting lets osqueryd restart it.
func (s *session) check() error {
	status, err := s.client.Ping()
	if err != nil {
		return fmt.Errorf("osqueryd is gone: ping: %w", err)
	}
	if status.Code != 0 {
		return fmt.Errorf("osqueryd ping returned status %d: %s", status.Code, status.Message)
	}
	list, err := s.client.Extensions()
	if err != nil {
		return fmt.Errorf("osqueryd is gone: listing extensions: %w", err)
	}
	if _, ok := list[s.uuid]; !ok {
		return fmt.Errorf("osqueryd no longer lists extension uuid %d", s.uuid)
	}
	return nil
}

// close deregisters if asked, stops serving and closes the connection, each
// step bounded by stopStep.
func (s *session) close(deregister bool) {
	if deregister {
		within(stopStep, func() {
			status, err := s.client.DeregisterExtension(s.uuid)
			if err == nil && status.Code != 0 {
				err = errors.New(status.Message)
			}
			if err != nil {
				s.log.Info("deregistering failed", "err", err)
			}
		})
	}
	within(stopStep, func() { _ = s.server.Stop() })
	// Closing the listener unlinks the name it was bound to, not the one
	// it was moved to.
	_ = os.Remove(s.path)
	// Close asks whether the connection is open by reading it, which
	// waits for a call in flight.
	within(stopStep, s.client.Close)
}

// within runs f and waits for it at most d.
func within(d time.Duration, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}
