package main

import (
	"io"
	"net"
	"testing"
	"time"
)

// The decoder gets every byte in order, only once the connection has been
// quiet, and the time it is given is the arrival of the last byte it read,
// not of the first.
func TestReadAheadConnTimesTheLastByte(t *testing.T) {
	client, server := net.Pipe()
	sentLast := make(chan time.Time, 1)
	go func() {
		server.Write([]byte("abc"))
		time.Sleep(quiet / 5)
		sentLast <- time.Now()
		server.Write([]byte("def"))
	}()
	r := newReadAheadConn(client, nil)
	got := make([]byte, 6)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	decoded := time.Now()
	if string(got) != "abcdef" {
		t.Errorf("read %q, want abcdef", got)
	}
	last := <-sentLast
	if r.last.Before(last) {
		t.Errorf("last byte timed %v before it was sent", last.Sub(r.last))
	}
	if decoded.Sub(last) < quiet {
		t.Errorf("decoder read %v after the last write, before the connection was quiet for %v", decoded.Sub(last), quiet)
	}
	client.Close()
	if all := r.received(); string(all) != "abcdef" {
		t.Errorf("received %q, want abcdef", all)
	}
}
