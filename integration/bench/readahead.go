package main

import (
	"net"
	"sync"
	"time"
)

// readAheadConn reads a response as fast as the extension writes it, and
// holds it from the stand-in's Thrift decoder until the connection has been
// quiet for a moment. When the response's last byte arrived then tells how
// long the extension took to deliver it, apart from the decoding: the Go
// decoder, running beside the extension on a machine of two CPUs, slowed
// the writes it waited for (osqueryd decodes in C++).
type readAheadConn struct {
	net.Conn
	mu      sync.Mutex
	more    *sync.Cond
	arrived []byte
	reads   []arrival // one per read of the connection, in order
	err     error     // what ended the reading
	taken   int       // bytes the decoder has read
	read    int       // index in reads of the read that held byte taken-1
	// last is when the last byte the decoder read had arrived.
	last time.Time
	done chan struct{} // closed when reading has ended
}

type arrival struct {
	end int // offset in arrived past the read's bytes
	at  time.Time
}

// quiet is how long the connection must be silent before the decoder
// starts.
const quiet = 50 * time.Millisecond

// newReadAheadConn reads c into buf's memory.
func newReadAheadConn(c net.Conn, buf []byte) *readAheadConn {
	r := &readAheadConn{Conn: c, arrived: buf, done: make(chan struct{})}
	r.more = sync.NewCond(&r.mu)
	go r.readAhead()
	return r
}

// readAhead ends when the connection is closed.
func (r *readAheadConn) readAhead() {
	defer close(r.done)
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Conn.Read(buf)
		r.mu.Lock()
		if n > 0 {
			r.arrived = append(r.arrived, buf[:n]...)
			r.reads = append(r.reads, arrival{len(r.arrived), time.Now()})
		}
		r.err = err
		r.more.Broadcast()
		r.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (r *readAheadConn) Read(p []byte) (int, error) {
	if r.last.IsZero() {
		r.waitQuiet()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.taken == len(r.arrived) && r.err == nil {
		r.more.Wait()
	}
	if r.taken == len(r.arrived) {
		return 0, r.err
	}
	n := copy(p, r.arrived[r.taken:])
	r.taken += n
	for r.reads[r.read].end < r.taken {
		r.read++
	}
	r.last = r.reads[r.read].at
	return n, nil
}

// waitQuiet returns once something has arrived and nothing more for quiet.
func (r *readAheadConn) waitQuiet() {
	for seen := 0; ; time.Sleep(quiet) {
		r.mu.Lock()
		n, err := len(r.arrived), r.err
		r.mu.Unlock()
		if err != nil || n > 0 && n == seen {
			return
		}
		seen = n
	}
}

// received waits until the connection is closed and reading has ended, and
// returns all that arrived.
func (r *readAheadConn) received() []byte {
	<-r.done
	return r.arrived
}
