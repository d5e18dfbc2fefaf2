package connectortest

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proxy stands between a connection and its real peer on loopback: it
// counts the connections the peer is given, and can drop them all and
// refuse new ones (Cut) until Restore, on the same address. The conformance
// suite uses it to take a peer away and bring it back, and to count
// sharing at the peer.
type Proxy struct {
	t      testing.TB
	addr   string
	target string

	mu       sync.Mutex
	ln       net.Listener
	open     map[net.Conn]net.Conn // client side -> peer side
	accepted int
	hole     int        // the blackhole's socket, or -1
	filler   []net.Conn // what fills its accept queue
	wg       sync.WaitGroup
}

// NewProxy starts a Proxy to target (host:port); it stops when the test
// ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, addr: ln.Addr().String(), target: target, open: map[net.Conn]net.Conn{}, hole: -1}
	p.serve(ln)
	t.Cleanup(func() {
		p.mu.Lock()
		if p.hole >= 0 {
			syscall.Close(p.hole)
			p.hole = -1
		}
		for _, c := range p.filler {
			c.Close()
		}
		p.mu.Unlock()
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

// Blackhole drops every connection, and from then on the address
// answers no dial at all, as a partition or a firewall that drops
// packets does: a dial times out rather than being refused. It holds a
// listening socket whose accept queue is full, so the kernel drops every
// SYN. Restore ends it.
func (p *Proxy) Blackhole() {
	p.t.Helper()
	p.Cut()
	ap, err := netip.ParseAddrPort(p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		p.t.Fatal(err)
	}
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	sa := &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		p.t.Fatalf("proxy: blackhole on %s: %v", p.addr, err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.hole = fd
	p.mu.Unlock()
	// Fill the accept queue: once a dial times out, the kernel drops
	// every further SYN.
	for range 8 {
		c, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.filler = append(p.filler, c)
		p.mu.Unlock()
	}
	p.t.Fatalf("proxy: the blackhole on %s still accepts", p.addr)
}

// Restore listens again on the same address: the peer is back.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	hole, filler := p.hole, p.filler
	p.hole, p.filler = -1, nil
	p.mu.Unlock()
	if hole >= 0 {
		syscall.Close(hole)
	}
	for _, c := range filler {
		c.Close()
	}
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
