// Package hostiletest helps the connector packages test hostile peers on
// loopback: a listener that serves each connection as a test says, and the
// memory a dial made the process allocate.
package hostiletest

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Peer is a loopback listener that serves every connection with a
// function of the test's, until the test ends.
type Peer struct {
	ln       net.Listener
	accepted atomic.Int64
}

// Listen starts a Peer; serve is called in a goroutine of its own for each
// connection, which is closed when serve returns or the test ends.
func Listen(t testing.TB, serve func(net.Conn)) *Peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Peer{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// Addr is the peer's host:port.
func (p *Peer) Addr() string { return p.ln.Addr().String() }

// Accepted is how many connections the peer has accepted.
func (p *Peer) Accepted() int { return int(p.accepted.Load()) }

// Allocated returns the bytes the process allocated while f ran (the
// heap's cumulative count: every goroutine's, none freed back).
func Allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Budget is what a test lets one dial of a hostile peer allocate: what
// the dial reads is bounded by connector.HandshakeBudget (64 KiB); what
// it allocates besides (a TLS handshake, buffers, the client itself) is
// measured at 20 to 230 KB under -race; far under what the peers claim.
const Budget = 512 << 10

// Hold reads and drops whatever c sends until it closes, so that a peer
// that has said its piece keeps the connection open.
func Hold(c net.Conn) {
	b := make([]byte, 512)
	for {
		if _, err := c.Read(b); err != nil {
			return
		}
	}
}
