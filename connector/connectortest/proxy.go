package connectortest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy stands between a connection and its real peer on loopback: it
// counts the connections the peer is given, and can drop them all and
// refuse new ones (Cut) until Restore, on the same address. The conformance
// suite uses it to take a peer away and bring it back, and to count
// sharing at the peer.
type Proxy struct {
	t      *testing.T
	addr   string
	target string

	mu       sync.Mutex
	ln       net.Listener
	open     map[net.Conn]net.Conn // client side -> peer side
	accepted int
	wg       sync.WaitGroup
}

// NewProxy starts a Proxy to target (host:port); it stops when the test
// ends.
func NewProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, addr: ln.Addr().String(), target: target, open: map[net.Conn]net.Conn{}}
	p.serve(ln)
	t.Cleanup(func() {
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// Addr is where to dial the peer through the proxy.
func (p *Proxy) Addr() string { return p.addr }

// Open is how many connections the peer has through the proxy now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.open)
}

// Accepted is how many connections the proxy has accepted in all.
func (p *Proxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// Cut drops every connection and refuses new ones: the peer is gone.
func (p *Proxy) Cut() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	pairs := p.open
	p.open = map[net.Conn]net.Conn{}
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for a, b := range pairs {
		a.Close()
		b.Close()
	}
}

// Restore listens again on the same address: the peer is back.
func (p *Proxy) Restore() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

func (p *Proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peer, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			if p.ln != ln { // cut meanwhile
				p.mu.Unlock()
				c.Close()
				peer.Close()
				return
			}
			p.open[c] = peer
			p.accepted++
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(c, peer, c)
			go p.pipe(peer, c, c)
		}
	}()
}

// pipe copies from src to dst; when either side ends, both close.
func (p *Proxy) pipe(dst, src, key net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	p.mu.Lock()
	peer, ok := p.open[key]
	delete(p.open, key)
	p.mu.Unlock()
	key.Close()
	if ok {
		peer.Close()
	}
	dst.Close()
	src.Close()
}
