package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
)

// extension is a running fanotify.ext, registered with a stand-in osqueryd
// exactly as osqueryd autoloads it.
type extension struct {
	m      *standin.Manager
	cmd    *exec.Cmd
	dir    string
	stderr standin.SyncBuffer
	// received keeps the memory of the last response read ahead: fresh
	// pages fault in at 12 µs each here, and a reader faulting in 17 MB
	// would slow the writes it measures.
	received []byte
	Pid      int
}

// startExtension launches bin with cfg as its configuration file and waits
// for it to register.
func startExtension(bin string, cfg config.Config) (*extension, error) {
	dir, err := os.MkdirTemp("/tmp", "fb")
	if err != nil {
		return nil, err
	}
	e := &extension{dir: dir}
	cfgPath := filepath.Join(dir, "fanotify.json")
	data, err := json.Marshal(cfg)
	if err == nil {
		err = os.WriteFile(cfgPath, data, 0o600)
	}
	if err == nil {
		e.m, err = standin.Listen(filepath.Join(dir, "osquery.em"))
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// osqueryd sets OSQUERY_EXTENSION to the extension's pid after fork;
	// a shell that execs keeps its pid.
	e.cmd = exec.Command("/bin/sh", "-c", `OSQUERY_EXTENSION=$$ exec "$0" "$@"`, bin,
		"--socket", e.m.Socket, "--timeout", "3", "--interval", "3", "--config", cfgPath)
	e.cmd.Stderr = &e.stderr
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		e.stop()
		return nil, err
	}
	e.Pid = e.cmd.Process.Pid
	if _, err := e.m.WaitRegistered("fanotify", 30*time.Second); err != nil {
		e.stop()
		return nil, fmt.Errorf("%w; stderr: %s", err, e.stderr.String())
	}
	return e, nil
}

// generate calls a table's generate with osqueryd's context JSON.
func (e *extension) generate(table, ctx string) ([]map[string]string, error) {
	rows, err := e.m.Generate(table, ctx)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w; fanotify.ext stderr: %s", table, err, e.stderr.String())
	}
	return rows, nil
}

// generateDelivered is generate on a connection read ahead of the client's
// decoder; delivered is how long after the call the response's last byte
// arrived.
func (e *extension) generateDelivered(table, ctx string) (rows []map[string]string, delivered time.Duration, err error) {
	var r *readAheadConn
	readAhead := func(c net.Conn) net.Conn {
		r = newReadAheadConn(c, e.received[:0])
		return r
	}
	start := time.Now()
	if rows, err = e.m.GenerateThrough(readAhead, table, ctx); err != nil {
		return nil, 0, fmt.Errorf("generate %s: %w; fanotify.ext stderr: %s", table, err, e.stderr.String())
	}
	e.received = r.received()
	return rows, r.last.Sub(start), nil
}

func (e *extension) stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Kill()
		e.cmd.Wait()
	}
	if e.m != nil {
		e.m.Stop()
	}
	os.RemoveAll(e.dir)
}

// collectorStat reads one counter of the fanotify_collector table.
func (e *extension) collectorStat(name string) (int, error) {
	rows, err := e.generate("fanotify_collector", "")
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, fmt.Errorf("fanotify_collector: no rows")
	}
	return strconv.Atoi(rows[0][name])
}
