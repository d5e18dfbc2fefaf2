package connection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/connkit/connkit/connector"
)

// live runs one connector.Conn: it dials from its own goroutine with
// backoff, follows Lost events, and keeps the status.
type live struct {
	conn     connector.Conn
	ev       *events
	lost     chan error
	policy   *connector.Policy   // in the context of every Connect and Ping
	watchers *watchers           // of the peer's address, while it refuses
	addr     string              // the peer's host:port (connector.Peer)
	scrub    func(string) string // of log lines
	clean    func(string) string // of the status: secret.Sanitizer
	log      *slog.Logger
	cfg      dialConfig

	// kick asks for a redial now (Reconnect); one pending is enough.
	kick chan struct{}

	// cur is st as of its last change, read without the lock: a list of
	// thousands reads every status.
	cur atomic.Pointer[Status]

	mu      sync.Mutex
	st      Status
	notify  func(st Status, prev State) // told each change of state; nil once muted
	dialed  func(error)                 // told the result of each dial
	lastLog time.Time                   // of the last line about this link's status
	kind    string                      // errKind of the last error
	started bool
	stopped bool
	cancel  context.CancelFunc
	done    chan struct{}
}

type dialConfig struct {
	minBackoff, maxBackoff, dialTimeout, healthInterval time.Duration
}

// events is handed to connector.Type.Open; Lost never blocks.
type events struct {
	lost   chan error
	policy *connector.Policy
	log    *slog.Logger
	active atomic.Int64 // Unix nanoseconds of the last message; 0 for none
}

// Active implements connector.Activity.
func (e *events) Active() { e.active.Store(time.Now().UnixNano()) }

func newEvents(p *connector.Policy, log *slog.Logger) *events {
	return &events{lost: make(chan error, 1), policy: p, log: log}
}

func (e *events) Logger() *slog.Logger { return e.log }

func (e *events) Dialer() *net.Dialer {
	var d *connector.DialPolicy
	if e.policy != nil {
		d = e.policy.Dial
	}
	return connector.PolicyDialer(d)
}

func (e *events) Lost(err error) {
	if err == nil {
		err = errors.New("link lost")
	}
	select {
	case e.lost <- err:
	default: // one pending loss is enough to redial
	}
}

func (e *events) Policy() *connector.Policy { return e.policy }

func newLive(conn connector.Conn, ev *events, ws *watchers, scrub, clean func(string) string, log *slog.Logger, cfg dialConfig) *live {
	l := &live{
		conn: conn, ev: ev, lost: ev.lost, policy: ev.policy, watchers: ws, scrub: scrub, clean: clean, log: log, cfg: cfg,
		st:   Status{State: StateConnecting, Since: time.Now().UTC()},
		kick: make(chan struct{}, 1),
	}
	st := l.st
	l.cur.Store(&st)
	if p, ok := conn.(connector.Peer); ok {
		l.addr = p.PeerAddr()
	}
	return l
}

// start runs the dial loop; wg counts the goroutine. It reports false if
// the live was stopped before it could start.
func (l *live) start(wg *sync.WaitGroup) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || l.started {
		return false
	}
	l.started = true
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(l.done)
		l.run(ctx)
	}()
	return true
}

// stop ends the dial loop, waits for it, and closes the conn. It is safe to
// call more than once and on a live that never started.
func (l *live) stop() {
	if l == nil {
		return
	}
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	started, cancel, done := l.started, l.cancel, l.done
	l.mu.Unlock()
	if started {
		cancel()
		<-done
	}
	if err := l.conn.Close(); err != nil {
		l.log.Warn("closing connection", "err", l.scrub(err.Error()))
	}
}

// lastActivity is when the link last carried a message, to the second
// (so that an Info kept as JSON changes at most once a second); zero if
// never.
func (l *live) lastActivity() time.Time {
	ns := l.ev.active.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(ns/1e9, 0).UTC()
}

func (l *live) status() Status { return *l.cur.Load() }

// maxStatusErr bounds the error of a status, in bytes.
const maxStatusErr = 1024

// retryLogEvery bounds how often a link that keeps failing the same way
// is logged: not a line per attempt, not silence for minutes.
var retryLogEvery = 30 * time.Second

// set records the link's state. failed counts a failed dial; next is when
// the next one is due, zero if none is waited for.
func (l *live) set(state State, err error, failed bool, next time.Time) {
	msg := ""
	if err != nil {
		// Bounded: a peer's error may quote what the peer sent.
		msg = connector.Truncate(l.clean(err.Error()), maxStatusErr)
	}
	now := time.Now().UTC()
	l.mu.Lock()
	prev := l.st
	if prev.State != state {
		l.st.Since = now
	}
	l.st.State, l.st.Err, l.st.Permanent = state, msg, connector.IsPermanent(err)
	switch {
	case state == StateConnected:
		l.st.Attempts = 0
	case failed:
		l.st.Attempts++
	}
	l.st.NextAttemptAt = next
	st := l.st
	l.cur.Store(&st)
	// A retry that fails the same way is no change, even if the text
	// differs (a local port, a peer's counter): the kind of failure says.
	kind := errKind(err)
	changed := prev.State != state || l.kind != kind
	l.kind = kind
	again := !changed && err != nil && now.Sub(l.lastLog) >= retryLogEvery
	if changed || again {
		l.lastLog = now
	}
	// An event says a change of state (or that retrying will no longer
	// help): one outage is one disconnected event, however its dials
	// fail. Published under l.mu, so that mute orders it before the event
	// that replaces or removes this live.
	if (prev.State != state || prev.Permanent != st.Permanent) && l.notify != nil {
		l.notify(st, prev.State)
	}
	l.mu.Unlock()
	switch {
	case again:
		l.log.Warn("connection still "+string(state), "err", msg, "attempts", st.Attempts, "nextAttemptAt", next)
	case !changed:
		// Retries of the same failure are logged at most every retryLogEvery.
	case state == StateConnected:
		l.log.Info("connection connected")
	case err != nil:
		l.log.Warn("connection "+string(state), "err", msg, "permanent", st.Permanent, "attempts", st.Attempts)
	}
}

// errKind is the kind of a link's failure, as far as an operator cares:
// the reason (refused, timeout, unauthorized...) and whether it is
// permanent.
func errKind(err error) string {
	if err == nil {
		return ""
	}
	k := connector.NetReason(err)
	var ce *connector.CheckError
	if errors.As(err, &ce) {
		k = ce.Reason
	}
	if connector.IsPermanent(err) {
		k += "/permanent"
	}
	return k
}

// mute stops the status events of a live that is being replaced or
// removed, so that none follows the event that reports it.
func (l *live) mute() {
	l.mu.Lock()
	l.notify = nil
	l.mu.Unlock()
}

// reconnect asks the dial loop to close the link and dial again now,
// without waiting out a backoff.
func (l *live) reconnect() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// errReconnect ends a link that Reconnect asked to redial.
var errReconnect = errors.New("reconnect asked")

func (l *live) run(ctx context.Context) {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     l.cfg.minBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         l.cfg.maxBackoff,
	}
	b.Reset()
	away := false // the last dial found no socket at the address
	for {
		// A loss reported by an earlier link, or a reconnect asked
		// before this dial, is stale once we redial.
		select {
		case <-l.lost:
		default:
		}
		select {
		case <-l.kick:
		default:
		}
		dctx, cancel := context.WithTimeout(connector.WithPolicy(ctx, l.policy), l.cfg.dialTimeout)
		woken, leave := l.cutShort(dctx, cancel, away)
		err := safely("Connect", func() error { return l.conn.Connect(dctx) })
		cancel()
		leave()
		away = err != nil && l.addr != "" && unreached(err)
		if ctx.Err() != nil {
			return
		}
		if l.dialed != nil {
			l.dialed(err)
		}
		if err != nil && woken.Load() {
			// The address answered again while this dial waited out an
			// unanswered SYN: dial it now.
			continue
		}
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("no answer within %v: %w", l.cfg.dialTimeout, err)
			}
			wait := b.NextBackOff()
			if connector.IsPermanent(err) {
				wait = l.cfg.maxBackoff
			}
			if !l.pause(ctx, wait, err) {
				return
			}
			continue
		}
		b.Reset()
		l.set(StateConnected, nil, false, time.Time{})
		err = l.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errReconnect) {
			l.set(StateConnecting, nil, false, time.Time{})
			continue
		}
		wait := b.NextBackOff()
		l.set(StateDisconnected, err, false, time.Now().Add(wait).UTC())
		if !l.sleep(ctx, wait) {
			return
		}
	}
}

// watch waits while the link is up: until the conn reports a loss, a ping
// of a connector.Pinger fails, or ctx ends. It returns why the link is down.
func (l *live) watch(ctx context.Context) error {
	var tick <-chan time.Time
	pinger, ok := l.conn.(connector.Pinger)
	if ok {
		t := time.NewTicker(l.cfg.healthInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case err := <-l.lost:
			return err
		case <-l.kick:
			return errReconnect
		case <-ctx.Done():
			return ctx.Err()
		case <-tick:
			pctx, cancel := context.WithTimeout(connector.WithPolicy(ctx, l.policy), l.cfg.dialTimeout)
			err := safely("Ping", func() error { return pinger.Ping(pctx) })
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("health check failed: %w", err)
			}
		}
	}
}

// cutShort ends a dial (cancel) to an address that did not answer the
// last one (away) if its watcher finds it answering meanwhile: such a
// dial waits out the kernel's SYN retries, seconds apart after the first
// few, and would come back seconds after the peer did. The dial counts
// as a waiter of the watcher until leave. The flag says whether it was
// cut short.
func (l *live) cutShort(dctx context.Context, cancel func(), away bool) (*atomic.Bool, func()) {
	woken := &atomic.Bool{}
	if l.watchers == nil || l.addr == "" || !away {
		return woken, func() {}
	}
	up, leave := l.watchers.wait(l.addr)
	if up == nil {
		return woken, leave
	}
	go func() {
		select {
		case <-up:
			woken.Store(true)
			cancel()
		case <-dctx.Done():
		}
	}()
	return woken, leave
}

// pause waits before the next dial: the backoff d; or, while nothing
// accepts connections at the peer's address, until its watcher finds it
// accepting again (with the longest backoff as a last resort), so that
// the connections to one address do not each try it in turn.
// It records the failed dial err first, with when the next is due.
func (l *live) pause(ctx context.Context, d time.Duration, err error) bool {
	if l.watchers == nil || l.addr == "" || !unreached(err) {
		l.set(StateDisconnected, err, true, time.Now().Add(d).UTC())
		return l.sleep(ctx, d)
	}
	up, leave := l.watchers.wait(l.addr)
	defer leave()
	// Jittered, so that the connections waiting on one address do not
	// all fall back to dialing it at the same moment.
	d = l.cfg.maxBackoff/2 + rand.N(l.cfg.maxBackoff/2+1)
	l.set(StateDisconnected, err, true, time.Now().Add(d).UTC())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-up:
	case <-l.kick:
	case <-ctx.Done():
		return false
	}
	return true
}

// sleep waits for d, or a reconnect, or until ctx is done, and reports
// whether ctx is live.
func (l *live) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.kick:
	case <-ctx.Done():
		return false
	}
	return true
}

// safely calls f, a connector's, and turns a panic in it (a driver that
// a hostile peer drove into one) into an error: one connection's fault
// never stops the house.
func safely(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the connector's %s panicked: %v", what, p)
		}
	}()
	return f()
}
