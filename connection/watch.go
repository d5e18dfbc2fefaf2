package connection

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/connkit/connkit/connector"
)

// watchers probe the addresses that refuse connections or do not answer,
// one watcher per address whatever the number of connections to it, and
// wake every connection waiting on an address as soon as it accepts
// again: a peer that comes back is redialed within about a second,
// however long it was gone, and while it is gone the address is tried
// about once a second in all.
type watchers struct {
	interval time.Duration
	dialer   func() *net.Dialer
	wg       *sync.WaitGroup
	stop     chan struct{}

	mu sync.Mutex
	m  map[string]*watcher
}

type watcher struct {
	waiters int
	up      chan struct{} // closed when the address accepts; then replaced
}

func newWatchers(interval time.Duration, dialer func() *net.Dialer, wg *sync.WaitGroup) *watchers {
	return &watchers{interval: interval, dialer: dialer, wg: wg, stop: make(chan struct{}), m: map[string]*watcher{}}
}

// wait registers a connection waiting for addr to accept. The channel is
// closed when it does; leave must be called once the wait is over.
func (ws *watchers) wait(addr string) (up <-chan struct{}, leave func()) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w := ws.m[addr]
	if w == nil {
		select {
		case <-ws.stop:
			return nil, func() {}
		default:
		}
		w = &watcher{up: make(chan struct{})}
		ws.m[addr] = w
		ws.wg.Add(1)
		go ws.run(addr, w)
	}
	w.waiters++
	var once sync.Once
	return w.up, func() {
		once.Do(func() {
			ws.mu.Lock()
			w.waiters--
			ws.mu.Unlock()
		})
	}
}

// run probes addr until no connection waits on it. A probe is started
// every interval or so, without waiting for the one before it: at an
// address that does not answer a probe lasts the whole interval, and
// waiting for it would find a healed address a whole interval late.
func (ws *watchers) run(addr string, w *watcher) {
	defer ws.wg.Done()
	found := make(chan struct{}, 1)
	for {
		// Jitter, so that the watchers of many addresses do not beat as
		// one.
		d := ws.interval/2 + rand.N(ws.interval/2) // within the interval: a peer back is found within it
		t := time.NewTimer(d)
		select {
		case <-ws.stop:
			t.Stop()
			ws.forget(addr, w)
			return
		case <-found:
			t.Stop()
			ws.mu.Lock()
			close(w.up)
			w.up = make(chan struct{})
			ws.mu.Unlock()
			continue
		case <-t.C:
		}
		ws.mu.Lock()
		if w.waiters == 0 {
			delete(ws.m, addr)
			ws.mu.Unlock()
			return
		}
		ws.mu.Unlock()
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			if ws.probe(addr) {
				select {
				case found <- struct{}{}:
				default: // another probe found it already
				}
			}
		}()
	}
}

func (ws *watchers) forget(addr string, w *watcher) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.m[addr] == w {
		delete(ws.m, addr)
	}
}

// probe reports whether addr accepts a TCP connection, through the dial
// policy.
func (ws *watchers) probe(addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), ws.interval)
	defer cancel()
	go func() {
		select {
		case <-ws.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	c, err := ws.dialer().DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// close stops every watcher; the Manager's WaitGroup waits for them.
func (ws *watchers) close() { close(ws.stop) }

// unreached reports whether err says that no socket to the address
// could be made: nothing accepts there, it is unreachable, or it does not
// answer at all (a partition, a blackhole: the dial timed out). A peer
// that answers and refuses the protocol or the credentials backs off as
// usual, and so does a dial the policy denied.
func unreached(err error) bool {
	if errors.Is(err, connector.ErrDialDenied) {
		return false
	}
	var oe *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.As(err, &oe) && oe.Op == "dial"
}
