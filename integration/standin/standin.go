// Package standin plays osqueryd's extension manager for end-to-end tests of
// fanotify.ext: it serves the real Thrift ExtensionManager protocol on a
// Unix socket, launches the built extension the way osqueryd autoloads it,
// and calls the extension's tables over a new connection per call, as
// osqueryd does, so calls may run concurrently.
//
// Typical use:
//
//	func TestX(t *testing.T) {
//		bin := standin.BuildBinary(t)          // go build ./extension, once per test binary
//		m := standin.New(t)                    // manager on /tmp/oqNNN/osquery.em
//		p := m.Launch(t, bin, false)           // BIN --socket PATH --timeout 3 --interval 3
//		if _, err := m.WaitRegistered("fanotify", 20*time.Second); err != nil {
//			t.Fatalf("%v\n%s", err, p.Stderr())
//		}
//		rows, err := m.Generate("mount_points",
//			`{"constraints":[{"name":"pid","list":[{"op":2,"expr":"1"}],"affinity":"BIGINT"}]}`)
//		...
//	}
//
// The manager:
//   - New(t): start one in a fresh short directory, stopped when the test
//     ends; Listen(path): start one at path, stopped by Stop. Both remove
//     path.* first, as osqueryd does.
//   - Launch(t, bin, verbose, extra...): start the extension as osqueryd
//     does; Start(t, bin, args...) passes exactly args. Both set
//     OSQUERY_EXTENSION to the extension's pid and return a *Process
//     (Pid, Stderr, Wait, Exited, Signal, Kill), killed when the test ends
//     and whose stderr is logged if the test failed.
//   - WaitRegistered, WaitRegisteredAgain (after a restart), Extensions,
//     Extension: the registry as osqueryd sees it.
//   - Columns(table), Generate(table, contextJSON), CallTable(table, req):
//     call the extension; a non-zero status comes back as a *StatusError,
//     a transport failure as a plain error. Call(uuid, registry, item, req)
//     returns the raw response.
//   - Shutdown(name): osqueryd's shutdown() call to the extension.
//   - Drop(name): forget the extension while the manager lives on, as
//     osqueryd does after failed pings. Sweep(): ping every extension and
//     drop those that do not answer. Stop(): osqueryd is gone. Hang():
//     osqueryd stops answering but keeps its connections open.
//   - OnRegister(f): f runs in every registerExtension before it answers.
//   - Rejections(name): registrations refused as duplicates.
//     Reserve(tables...): table names to refuse, besides CoreTables.
//
// Everything is safe for concurrent use. The integration package's TestMain
// calls Main, which removes the binary BuildBinary made; other test files of
// that package just call BuildBinary.
package standin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/osquery/osquery-go/gen/osquery"
)

// DuplicateMessage is osqueryd's refusal of a second extension of a name.
const DuplicateMessage = "Duplicate extension registered"

// CoreTables are some of osquery's own table names, which the manager
// refuses to let an extension register.
var CoreTables = []string{"mounts", "processes", "process_open_files", "system_controls", "file_events", "users", "osquery_info"}

// Extension is one registered extension.
type Extension struct {
	UUID     osquery.ExtensionRouteUUID
	Info     osquery.InternalExtensionInfo
	Registry osquery.ExtensionRegistry
}

// Manager is the stand-in for osqueryd's extension manager.
type Manager struct {
	// Socket is the manager socket (osqueryd's --extensions_socket).
	Socket string
	// Timeout and Interval are passed to launched extensions as --timeout
	// and --interval, in seconds (osqueryd's defaults: 3).
	Timeout, Interval int
	// CallTimeout bounds each call to an extension (osqueryd: 300 s).
	CallTimeout time.Duration

	listener net.Listener

	mu         sync.Mutex
	extensions map[osquery.ExtensionRouteUUID]*Extension
	nextUUID   osquery.ExtensionRouteUUID
	rejections map[string]int
	reserved   []string
	conns      map[net.Conn]bool
	stopped    bool
	onRegister func() // see OnRegister
	// hung is closed by Hang; calls then wait for done, closed by Stop.
	hung, done chan struct{}
}

// New starts a manager in a fresh short directory under /tmp (Unix socket
// paths are limited to 107 bytes). It stops when the test ends.
func New(t testing.TB) *Manager {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "oq")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m, err := Listen(filepath.Join(dir, "osquery.em"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// Listen starts a manager on socket. Like osqueryd's, it first removes
// the socket and every socket.* that earlier runs left (removeStalePaths in
// osquery/extensions/interface.cpp), also those of extensions launched
// before it.
func Listen(socket string) (*Manager, error) {
	stale, err := filepath.Glob(socket + ".*")
	if err != nil {
		return nil, err
	}
	for _, path := range append(stale, socket) {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		Socket:      socket,
		Timeout:     3,
		Interval:    3,
		CallTimeout: 60 * time.Second,
		listener:    ln,
		extensions:  map[osquery.ExtensionRouteUUID]*Extension{},
		nextUUID:    1000,
		rejections:  map[string]int{},
		reserved:    slices.Clone(CoreTables),
		conns:       map[net.Conn]bool{},
		hung:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	go m.acceptLoop()
	return m, nil
}

func (m *Manager) acceptLoop() {
	processor := osquery.NewExtensionManagerProcessor(managerHandler{m})
	for {
		conn, err := m.listener.Accept()
		if err != nil {
			return
		}
		if !m.track(conn) {
			conn.Close()
			return
		}
		go m.serveConn(processor, conn)
	}
}

// track records conn so that Stop can cut it; false once stopped.
func (m *Manager) track(conn net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return false
	}
	m.conns[conn] = true
	return true
}

func (m *Manager) serveConn(processor thrift.TProcessor, conn net.Conn) {
	defer func() {
		m.mu.Lock()
		delete(m.conns, conn)
		m.mu.Unlock()
		conn.Close()
	}()
	proto := hangingProtocol{thrift.NewTBinaryProtocolConf(thrift.NewTSocketFromConnConf(conn, nil), nil), m}
	for {
		if ok, err := processor.Process(context.Background(), proto, proto); !ok || err != nil {
			return
		}
	}
}

// hangingProtocol holds each request, once read, while the manager hangs.
type hangingProtocol struct {
	thrift.TProtocol
	m *Manager
}

func (p hangingProtocol) ReadMessageBegin(ctx context.Context) (string, thrift.TMessageType, int32, error) {
	name, kind, seq, err := p.TProtocol.ReadMessageBegin(ctx)
	select {
	case <-p.m.hung:
		<-p.m.done
	default:
	}
	return name, kind, seq, err
}

// Hang makes osqueryd stop answering without closing anything, as a stuck
// osqueryd does: every request read from then on waits for Stop.
func (m *Manager) Hang() {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.hung:
	default:
		close(m.hung)
	}
}

// Stop makes osqueryd vanish: the socket closes, and so does every open
// connection, including the extensions' own.
func (m *Manager) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	m.stopped = true
	close(m.done)
	m.listener.Close()
	for c := range m.conns {
		c.Close()
	}
}

// Extensions returns the registered extensions by name.
func (m *Manager) Extensions() map[string]*Extension {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]*Extension{}
	for _, e := range m.extensions {
		out[e.Info.Name] = e
	}
	return out
}

// Extension returns the registered extension called name.
func (m *Manager) Extension(name string) (*Extension, bool) {
	e, ok := m.Extensions()[name]
	return e, ok
}

// OnRegister has f called by every registerExtension before it answers:
// osqueryd may act on a registration at once.
func (m *Manager) OnRegister(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onRegister = f
}

// WaitRegistered waits until an extension called name is registered and
// listening on its socket.
func (m *Manager) WaitRegistered(name string, timeout time.Duration) (*Extension, error) {
	return m.waitFor(name, timeout, m.serving)
}

// WaitRegisteredAgain waits until name is registered and listening under a
// UUID other than old, as after a restart.
func (m *Manager) WaitRegisteredAgain(name string, old osquery.ExtensionRouteUUID, timeout time.Duration) (*Extension, error) {
	return m.waitFor(name, timeout, func(e *Extension) bool { return m.serving(e) && e.UUID != old })
}

// serving reports whether e is registered and its socket exists: an
// extension learns its UUID, and so its socket path, from the registration.
func (m *Manager) serving(e *Extension) bool {
	if e == nil {
		return false
	}
	_, err := os.Stat(m.ExtensionSocket(e.UUID))
	return err == nil
}

func (m *Manager) waitFor(name string, timeout time.Duration, done func(*Extension) bool) (*Extension, error) {
	deadline := time.Now().Add(timeout)
	for {
		e := m.Extensions()[name]
		if done(e) {
			return e, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("extension %q: condition not met within %s (registered: %v)", name, timeout, slices.Sorted(maps.Keys(m.Extensions())))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reserve makes the manager refuse registrations of the named tables, as
// osqueryd refuses names of its own tables.
func (m *Manager) Reserve(tables ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reserved = append(m.reserved, tables...)
}

// Rejections counts the registrations refused as duplicates of name.
func (m *Manager) Rejections(name string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rejections[name]
}

// Drop removes the extension called name from the registry, as osqueryd
// does after failed pings, while the manager keeps running.
func (m *Manager) Drop(name string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for uuid, e := range m.extensions {
		if e.Info.Name == name {
			delete(m.extensions, uuid)
			return true
		}
	}
	return false
}

// Sweep pings every registered extension on its socket and drops those that
// do not answer, like osqueryd's health check. It returns the dropped names.
func (m *Manager) Sweep() []string {
	var dropped []string
	for name, e := range m.Extensions() {
		if err := m.withClient(e.UUID, nil, func(ctx context.Context, c *osquery.ExtensionClient) error {
			_, err := c.Ping(ctx)
			return err
		}); err != nil {
			m.mu.Lock()
			delete(m.extensions, e.UUID)
			m.mu.Unlock()
			dropped = append(dropped, name)
		}
	}
	return dropped
}

// ExtensionSocket is where the extension with uuid serves.
func (m *Manager) ExtensionSocket(uuid osquery.ExtensionRouteUUID) string {
	return fmt.Sprintf("%s.%d", m.Socket, uuid)
}

// StatusError is a call that the extension answered with a failure status.
type StatusError struct {
	Code    int32
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("extension status %d: %s", e.Code, e.Message)
}

// Columns calls {"action":"columns"} on table and returns its routes.
func (m *Manager) Columns(table string) ([]map[string]string, error) {
	return m.CallTable(table, osquery.ExtensionPluginRequest{"action": "columns"})
}

// Generate calls {"action":"generate","context":contextJSON} on table.
func (m *Manager) Generate(table, contextJSON string) ([]map[string]string, error) {
	return m.GenerateThrough(nil, table, contextJSON)
}

// GenerateThrough is Generate with the new connection to the extension
// passed through wrap (unless nil), for a caller that watches what crosses
// it.
func (m *Manager) GenerateThrough(wrap func(net.Conn) net.Conn, table, contextJSON string) ([]map[string]string, error) {
	return m.callTable(wrap, table, osquery.ExtensionPluginRequest{"action": "generate", "context": contextJSON})
}

// CallTable sends req to the extension that registered table, on a new
// connection, and turns a failure status into a *StatusError.
func (m *Manager) CallTable(table string, req osquery.ExtensionPluginRequest) ([]map[string]string, error) {
	return m.callTable(nil, table, req)
}

func (m *Manager) callTable(wrap func(net.Conn) net.Conn, table string, req osquery.ExtensionPluginRequest) ([]map[string]string, error) {
	uuid, err := m.tableOwner(table)
	if err != nil {
		return nil, err
	}
	resp, err := m.call(uuid, wrap, "table", table, req)
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, errors.New("response without status")
	}
	if resp.Status.Code != 0 {
		return nil, &StatusError{Code: resp.Status.Code, Message: resp.Status.Message}
	}
	return resp.Response, nil
}

// tableOwner finds the extension that registered table. A table nobody
// registered goes to the only extension, so that tests can ask an extension
// about tables it does not have.
func (m *Manager) tableOwner(table string) (osquery.ExtensionRouteUUID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if uuid, ok := m.ownerLocked(table); ok {
		return uuid, nil
	}
	if len(m.extensions) == 1 {
		for uuid := range m.extensions {
			return uuid, nil
		}
	}
	return 0, fmt.Errorf("no extension registered table %q", table)
}

// Call sends one call to the extension with uuid on a new connection.
func (m *Manager) Call(uuid osquery.ExtensionRouteUUID, registry, item string, req osquery.ExtensionPluginRequest) (*osquery.ExtensionResponse, error) {
	return m.call(uuid, nil, registry, item, req)
}

func (m *Manager) call(uuid osquery.ExtensionRouteUUID, wrap func(net.Conn) net.Conn, registry, item string, req osquery.ExtensionPluginRequest) (*osquery.ExtensionResponse, error) {
	var resp *osquery.ExtensionResponse
	err := m.withClient(uuid, wrap, func(ctx context.Context, c *osquery.ExtensionClient) (err error) {
		resp, err = c.Call(ctx, registry, item, req)
		return err
	})
	return resp, err
}

// Shutdown calls the extension's shutdown(), as osqueryd does when it stops.
func (m *Manager) Shutdown(name string) error {
	e, ok := m.Extension(name)
	if !ok {
		return fmt.Errorf("no extension %q", name)
	}
	return m.withClient(e.UUID, nil, func(ctx context.Context, c *osquery.ExtensionClient) error {
		return c.Shutdown(ctx)
	})
}

// withClient runs f with a client of the extension with uuid, on a new
// connection passed through wrap unless it is nil.
func (m *Manager) withClient(uuid osquery.ExtensionRouteUUID, wrap func(net.Conn) net.Conn, f func(context.Context, *osquery.ExtensionClient) error) error {
	conn, err := net.DialTimeout("unix", m.ExtensionSocket(uuid), m.CallTimeout)
	if err != nil {
		return err
	}
	if wrap != nil {
		conn = wrap(conn)
	}
	sock := thrift.NewTSocketFromConnConf(conn, &thrift.TConfiguration{SocketTimeout: m.CallTimeout})
	defer sock.Close()
	ctx, cancel := context.WithTimeout(context.Background(), m.CallTimeout)
	defer cancel()
	// osqueryd's client reads through a buffer too (TBufferedTransport):
	// unbuffered, every field of a large response would cost a syscall.
	trans := thrift.NewTBufferedTransport(sock, 64<<10)
	return f(ctx, osquery.NewExtensionClientFactory(trans, thrift.NewTBinaryProtocolFactoryConf(nil)))
}
