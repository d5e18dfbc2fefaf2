package connection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/connkit/connkit/connection/internal/jsonbody"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/connkit/connkit/connection/secret"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store"
)

// Options configure a Manager. A nil *Options means all defaults.
type Options struct {
	// Registry holds the connection types; nil means registry.Default.
	Registry *registry.Registry
	// Logger receives status changes and failures, with secrets scrubbed;
	// nil means slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between dials of a
	// connection that is down (with jitter); defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds one dial and one health check; default 10s.
	DialTimeout time.Duration
	// SecretKey, if set, encrypts secret props at rest with AES-GCM (16,
	// 24 or 32 bytes: AES-128, -192 or -256). Records stored before are
	// read as they are and sealed at their next write. A record whose
	// secrets are sealed and cannot be opened (no key, or another one) is
	// loaded as a connection that cannot run, saying why, without its
	// secrets: they are never read as blanks, and the rest runs.
	SecretKey []byte
	// HealthInterval is how often a connected connection whose type can
	// ping (connector.Pinger) is pinged; a failed ping counts as a lost
	// link. Default 5s.
	HealthInterval time.Duration
	// MaxPropsBytes caps the props of one connection, as JSON; default
	// 64 KiB. Larger props are refused (invalid_argument).
	MaxPropsBytes int
	// MaxConnections caps how many connections there may be; default
	// 10,000. A Create past it is refused (limit_exceeded).
	MaxConnections int
	// WriteTimeout bounds each write (Create, Update, Delete, and each of
	// Apply's) from its call to its answer, whatever it waits for: the
	// store, or another write of the same connection before it. Past it
	// the write fails with ErrUnavailable (it may or may not have been
	// applied if the store had it). Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// WatchInterval is how often the address of a peer that refuses
	// connections is probed, once for all the connections to it: when it
	// accepts again, they redial at once rather than after their backoff.
	// Default 1s; negative turns the watchers off (each connection waits
	// out its own backoff).
	WatchInterval time.Duration
	// Policy bounds what connections may do on the host: the addresses
	// they dial (dial, redial and health pings), the addresses their
	// listeners bind, the files they open. nil means
	// connector.DefaultListenPolicy alone. Give the same to the Checker
	// (httpapi's default Checker takes it from the Manager).
	Policy *connector.Policy
	// EventHistory is how many events are kept for subscribers that
	// resume (SubscribeOptions.From); default and least 1024.
	EventHistory int
}

// Manager holds named connections: it stores their specs, keeps each one
// dialed in the background, and shares one live connection among every
// user attached to it. It is safe for concurrent use.
//
// Writes to one connection are serialised; no lock is held while the
// store or the network is used.
type Manager struct {
	store store.Store
	reg   *registry.Registry
	log   *slog.Logger
	cfg   dialConfig
	seal  *secret.Sealer // nil: secrets stored as given

	maxProps, maxConns int
	writeTimeout       time.Duration
	// shared says the store is a Watcher, which other instances may
	// write to: a write decides from the store, not from this memory.
	shared   bool
	policy   *connector.Policy
	watchers *watchers
	bus      *bus
	obs      observers

	mu    sync.Mutex
	conns map[string]*entry
	// tombs holds, for a shared store, the revision of each connection
	// this Manager deleted, until the store's watch has passed it.
	tombs map[string]int64
	// gone holds, for a shared store, the revision of each record whose
	// delete the watch has applied since its last full read, so that a
	// write that read the record before the delete knows memory is past
	// it.
	gone   map[string]int64
	lapsed bool // this instance's refs may have lapsed (store.RefLease)
	// progress is closed at each change or progress notice the watch
	// applies, then replaced, for the writes that wait on memory.
	progress chan struct{}
	// unfollow ends the watch of a shared store; followed waits for it.
	unfollow context.CancelFunc
	followed sync.WaitGroup
	ids      []string // the keys of conns, sorted: a list need not sort
	closed   bool
	wg       sync.WaitGroup // dial loops
}

// entry is one connection. Its fields are guarded by Manager.mu.
type entry struct {
	rec    store.Record
	props  map[string]any // as the user gave them, secrets in clear
	masked map[string]any // props with secrets masked; never modified
	schema *connector.Schema
	live   *live                // nil if the connection cannot run
	broken Status               // the status when live is nil
	refs   map[string]*refState // by ref name
	// busy is non-nil while a write on this id is in flight; it is closed
	// when that write ends. Writes and attaches wait for it.
	busy chan struct{}
	// stored is false while the entry's Create is in flight.
	stored bool
	// refsGen counts the changes of refs, and json is the connection's
	// Info as JSON for the key it was encoded for (see AppendPageJSON).
	refsGen uint64
	json    []byte
	jsonKey infoKey
	// identity is the connection's identity at its peer
	// (connector.Identifier), and claim the one a write in flight is
	// taking; no two entries share one.
	identity, claim string
}

// New returns a Manager over s, then reloads every stored connection and
// starts dialing it in the background. A stored connection that can no
// longer run (its type is not registered, its props no longer valid) is
// kept, reported disconnected with the reason, and never dropped. The
// Manager does not close s.
func New(ctx context.Context, s store.Store, opts *Options) (*Manager, error) {
	if opts == nil {
		opts = &Options{}
	}
	m := &Manager{
		store: s,
		reg:   opts.Registry,
		log:   opts.Logger,
		cfg: dialConfig{
			minBackoff:     orDefault(opts.MinBackoff, 500*time.Millisecond),
			maxBackoff:     orDefault(opts.MaxBackoff, 30*time.Second),
			dialTimeout:    orDefault(opts.DialTimeout, 10*time.Second),
			healthInterval: orDefault(opts.HealthInterval, 5*time.Second),
		},
		conns:        make(map[string]*entry),
		maxProps:     opts.MaxPropsBytes,
		maxConns:     opts.MaxConnections,
		writeTimeout: orDefault(opts.WriteTimeout, DefaultWriteTimeout),
		policy:       opts.Policy,
		bus:          newBus(max(opts.EventHistory, 1024)),
		progress:     make(chan struct{}),
	}
	if m.policy == nil {
		m.policy = &connector.Policy{Listen: connector.DefaultListenPolicy}
	}
	if opts.WatchInterval >= 0 {
		m.watchers = newWatchers(max(orDefault(opts.WatchInterval, time.Second), 50*time.Millisecond), func() *net.Dialer { return connector.PolicyDialer(m.policy.Dial) }, &m.wg)
	}
	if m.maxProps <= 0 {
		m.maxProps = 64 << 10
	}
	if m.maxConns <= 0 {
		m.maxConns = 10000
	}
	if m.reg == nil {
		m.reg = registry.Default
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.cfg.maxBackoff < m.cfg.minBackoff {
		m.cfg.maxBackoff = m.cfg.minBackoff
	}
	var err error
	if m.seal, err = secret.NewSealer(opts.SecretKey); err != nil {
		return nil, err
	}
	recs, err := s.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("connection: loading stored connections: %w", err)
	}
	// One bad record never stops the house: a record that cannot be read,
	// unsealed or opened is loaded as a connection that cannot run, with
	// the reason; the others run. Nothing runs on blank secrets.
	entries := make([]*entry, 0, len(recs))
	for _, rec := range recs {
		if !ValidID(rec.ID) {
			// No route reaches it: the operator fixes it in the store.
			m.log.Error("a stored record has no valid connection id and is not loaded; fix or delete it in the store", "id", connector.Short(rec.ID))
			continue
		}
		e := &entry{rec: rec, refs: map[string]*refState{}, stored: true}
		props, err := m.load(rec)
		if err := m.prepare(e, props, err); err != nil {
			m.log.Error("stored connection cannot run; fix it with an update, or delete it", "connection", rec.ID, "type", connector.Short(rec.Type), "err", e.broken.Err)
		}
		entries = append(entries, e)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		m.conns[e.rec.ID] = e
		st := e.status()
		if e.live != nil {
			m.bus.seed(e.rec.ID, st)
			e.live.start(&m.wg)
		} else {
			// Its history begins with the event, as a change's would.
			m.bus.publish(Event{Kind: EventStatus, ID: e.rec.ID, Type: e.rec.Type, Status: &st})
		}
	}
	m.ids = slices.Sorted(maps.Keys(m.conns))
	if w, ok := s.(store.Watcher); ok {
		var fctx context.Context
		fctx, m.unfollow = context.WithCancel(context.Background())
		m.tombs = map[string]int64{}
		m.gone = map[string]int64{}
		m.shared = true
		if rl, ok := s.(store.RefLease); ok {
			rl.NotifyRefs(m.refsLease)
		}
		m.followed.Add(1)
		go m.follow(fctx, w)
	}
	return m, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// prepare fills e's props, schema and live from the stored props (or the
// error of reading them). On failure e gets a broken status with the
// reason instead of a live.
func (m *Manager) prepare(e *entry, props map[string]any, err error) error {
	t, terr := m.lookup(e.rec.Type)
	if terr == nil {
		e.schema = t.Schema()
	}
	if err == nil {
		err = terr
	}
	if err == nil {
		e.live, err = m.open(e.rec.ID, e.rec.Type, t, props)
		e.identity, _ = identity(e.rec.Type, t, props)
	}
	if props == nil {
		props = map[string]any{}
	}
	e.setProps(props)
	if err != nil {
		msg := err.Error()
		if e.schema != nil {
			msg = secret.Sanitizer(e.schema, props)(msg)
		} else {
			msg = secret.Quoter(&connector.Schema{}, props)(msg)
		}
		e.broken = Status{State: StateDisconnected, Err: msg, Permanent: true, Since: time.Now().UTC()}
	}
	return err
}

func parseProps(raw []byte) (map[string]any, error) {
	// The decoder of request bodies: a record is read as warily.
	v, err := jsonbody.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("stored props are not a JSON object: %v", err)
	}
	if v == nil {
		return map[string]any{}, nil
	}
	p, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("stored props are not a JSON object, but %s", jsonbody.Kind(v))
	}
	return p, nil
}

// load reads a stored record's props as they run: parsed, their secrets
// unsealed, each secret a string. On failure it returns what can be
// shown, without secrets (a sealed one is no secret to use), and why.
func (m *Manager) load(rec store.Record) (map[string]any, error) {
	if rec.Err != nil {
		return map[string]any{}, fmt.Errorf("the store cannot read the record: %w", rec.Err)
	}
	props, err := parseProps(rec.Props)
	if err != nil {
		return map[string]any{}, err
	}
	t, ok := m.reg.Lookup(rec.Type)
	if !ok {
		return props, nil // prepare says why it cannot run
	}
	if err := m.seal.Open(t.Schema(), props); err != nil {
		return secret.Strip(t.Schema(), props), err
	}
	// Written before every secret was a string (a number in edgex's
	// optional, say): read as new ones are.
	norm, err := secret.Normalize(t.Schema(), props)
	if err != nil {
		return secret.Strip(t.Schema(), props), err
	}
	return norm, nil
}

func (m *Manager) lookup(typ string) (connector.Type, error) {
	if typ == "" {
		return nil, invalidField("", "typ", "required: give one of "+strings.Join(m.reg.Names(), ", "))
	}
	t, ok := m.reg.Lookup(typ)
	if !ok {
		return nil, invalidField("", "typ", fmt.Sprintf("unknown type %q; the registered types are %s (import a connector package to add one)",
			connector.Short(typ), strings.Join(m.reg.Names(), ", ")))
	}
	return t, nil
}

// open decodes props and builds a live that has not started. It performs
// no I/O.
func (m *Manager) open(id, typ string, t connector.Type, props map[string]any) (*live, error) {
	schema := t.Schema()
	resolved, refs, rerr := secret.Resolve(schema, props, m.policy)
	if rerr == nil {
		props = resolved
	}
	decoded, err := schema.Decode(props)
	if err == nil && rerr != nil {
		// Valid, but a secret reference cannot be read now: the
		// connection is kept, and cannot run until it can.
		return nil, &unresolved{rerr}
	}
	if err == nil {
		scrub := secret.Scrubber(schema, props)
		log := slog.New(scrubHandler{m.log.Handler(), scrub}).With("connection", id, "type", typ)
		// Bound references hold the connection to their networks.
		ev := newEvents(m.policy.Bound(refs), log)
		var conn connector.Conn
		conn, err = t.Open(decoded, ev)
		if err == nil {
			l := newLive(conn, ev, m.watchers, scrub, secret.Sanitizer(schema, props), log, m.cfg)
			l.notify = func(st Status, prev State) {
				m.bus.publish(Event{Kind: EventStatus, ID: id, Type: typ, Status: &st, Previous: prev})
			}
			l.dialed = func(err error) { m.obs.each(func(o Observer) { o.Dialed(id, typ, err) }) }
			return l, nil
		}
	}
	clean := secret.Sanitizer(schema, props)
	if fe, ok := err.(connector.FieldErrors); ok {
		// A connector may quote what it was given, secrets included.
		return nil, invalidClean(id, fe, clean)
	}
	return nil, invalidField(id, "props", clean(err.Error()))
}

// unresolved is the error of props whose secret references cannot be
// read: not invalid, but the connection cannot run until they can.
type unresolved struct{ err error }

func (u *unresolved) Error() string { return "a secret reference cannot be read: " + u.err.Error() }
func (u *unresolved) Unwrap() error { return u.err }

// brokenStatus is the status of a connection that cannot run because of
// err.
func brokenStatus(err error) Status {
	return Status{State: StateDisconnected, Err: err.Error(), Permanent: true, Since: time.Now().UTC()}
}

// prepared is a validated spec: its live, not started, and its props as
// they will be stored. live is nil, and broken says why, if a secret
// reference cannot be read.
type prepared struct {
	broken   Status
	live     *live
	identity string // at the peer; "" for none
	idField  string // the prop that sets it
	schema   *connector.Schema
	props    map[string]any  // as a reload will read them, secrets in clear
	raw      json.RawMessage // props as JSON
}

// validate checks spec and builds its live without I/O.
func (m *Manager) validate(spec Spec, prev map[string]any, prevType string) (*prepared, error) {
	t, err := m.lookup(spec.Type)
	if err != nil {
		return nil, err
	}
	props := spec.Props
	if props == nil {
		props = map[string]any{}
	}
	// Too large is refused before any copy is made of it.
	if n := jsonSize(props); n > m.maxProps {
		return nil, invalidField(spec.ID, "props", fmt.Sprintf("over %d bytes of JSON; give at most %d", n, m.maxProps))
	}
	// A secret is a secret by its place, whatever its JSON type: from
	// here on every one is a string.
	props, err = secret.Normalize(t.Schema(), props)
	if err != nil {
		return nil, invalid(spec.ID, err.(connector.FieldErrors))
	}
	if prevType != spec.Type {
		prev = nil // a secret is never carried to another type
	}
	// The props as given first, before any copy of them: their errors
	// quote the request alone, masked by its own secrets only, never by
	// stored ones, and an invalid spec costs no more than its decoding.
	if _, err := t.Schema().Decode(props); err != nil {
		return nil, invalidClean(spec.ID, err.(connector.FieldErrors), secret.Quoter(t.Schema(), props))
	}
	props, err = secret.Restore(t.Schema(), props, prev)
	if err != nil {
		return nil, invalid(spec.ID, err.(connector.FieldErrors))
	}
	raw, err := json.Marshal(props)
	if err != nil {
		return nil, invalidField(spec.ID, "props", "not encodable as JSON: "+err.Error())
	}
	if len(raw) > m.maxProps {
		return nil, invalidField(spec.ID, "props", fmt.Sprintf("%d bytes of JSON; give at most %d", len(raw), m.maxProps))
	}
	// Decode what will be stored, so that a reload sees the same props.
	stored, err := parseProps(raw)
	if err != nil {
		return nil, invalidField(spec.ID, "props", err.Error())
	}
	l, err := m.open(spec.ID, spec.Type, t, stored)
	var u *unresolved
	if err != nil && !errors.As(err, &u) {
		return nil, err
	}
	p := &prepared{live: l, schema: t.Schema(), props: stored, raw: raw}
	if u != nil {
		p.broken = brokenStatus(u)
	}
	p.identity, p.idField = identity(spec.Type, t, stored)
	return p, nil
}

// jsonSize is about the size of v as JSON, at least as large as its
// encoding but for escapes, without encoding it: a cheap first bound.
func jsonSize(v any) int {
	switch x := v.(type) {
	case string:
		return len(x) + 2
	case json.Number:
		return len(x)
	case map[string]any:
		n := 2
		for k, e := range x {
			n += len(k) + 4 + jsonSize(e)
		}
		return n
	case []any:
		n := 2
		for _, e := range x {
			n += 1 + jsonSize(e)
		}
		return n
	case []string:
		n := 2
		for _, e := range x {
			n += len(e) + 3
		}
		return n
	}
	return 4 // a number of Go, a bool, null
}

// identity is the identity at the peer of a connection of type typ with
// props p, if the type has one.
func identity(typ string, t connector.Type, p map[string]any) (string, string) {
	idr, ok := t.(connector.Identifier)
	if !ok {
		return "", ""
	}
	decoded, err := t.Schema().Decode(p)
	if err != nil {
		return "", ""
	}
	id, field := idr.Identity(decoded)
	if id == "" {
		return "", ""
	}
	return id, field
}

// claimed returns the connection other than self that holds or is taking
// identity, or "". m.mu must be held.
func (m *Manager) claimed(ident, self string) string {
	if ident == "" {
		return ""
	}
	for id, e := range m.conns {
		if id != self && (e.identity == ident || e.claim == ident) {
			return id
		}
	}
	return ""
}

func identityTaken(id, other, field string) error {
	return &Error{Code: CodeAlreadyExists, ID: id,
		Fields:  connector.FieldErrors{{Field: field, Message: fmt.Sprintf("connection %s has the same one on the same peer", quote(other))}},
		Message: fmt.Sprintf("connection %s: its %s is the one of connection %s on the same peer; the peer would drop each for the other: give another %s", quote(id), field, quote(other), field)}
}

// toStore returns the props JSON to store: with its secrets encrypted when
// a SecretKey is set.
func (m *Manager) toStore(p *prepared) (json.RawMessage, error) {
	if m.seal == nil {
		return p.raw, nil
	}
	sealed, err := m.seal.Seal(p.schema, p.props)
	if err != nil {
		return nil, err
	}
	return json.Marshal(sealed)
}

// acquire returns the stored entry id with m.mu held, once no write on it
// is in flight. On error m.mu has been released.
func (m *Manager) acquire(ctx context.Context, id string) (*entry, error) {
	e, err := m.idle(ctx, id)
	if err == nil && e == nil {
		m.mu.Unlock()
		err = notFound(id)
	}
	return e, err
}

// idle returns the entry id, or nil if there is none, with m.mu held, once
// no write on it is in flight. m.mu must be held; on error it has been
// released.
func (m *Manager) idle(ctx context.Context, id string) (*entry, error) {
	for {
		if m.closed {
			m.mu.Unlock()
			return nil, errClosed
		}
		e := m.conns[id]
		if e == nil || e.busy == nil {
			return e, nil
		}
		ch := e.busy
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errWriteTimeout) {
				return nil, &Error{Code: CodeUnavailable, ID: id, Err: context.Cause(ctx),
					Message: fmt.Sprintf("connection %s: another write of it was still in flight at the write timeout; nothing was changed, retry", quote(id))}
			}
			return nil, ctxError(id, "waiting for another change of the connection", ctx.Err())
		}
		m.mu.Lock()
	}
}

// DefaultWriteTimeout is Options.WriteTimeout's default.
const DefaultWriteTimeout = 5 * time.Second

// errWriteTimeout is the cause of a write's context past WriteTimeout.
var errWriteTimeout = fmt.Errorf("%w: no answer within the write timeout", store.ErrUnavailable)

// writing bounds a write by WriteTimeout from its call.
func (m *Manager) writing(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, m.writeTimeout, errWriteTimeout)
}

// stored is the error of a store call made under ctx (from writing): one
// cut short by the write timeout is ErrUnavailable, its outcome unknown.
func stored(ctx context.Context, err error) error {
	if err != nil && errors.Is(context.Cause(ctx), errWriteTimeout) && !errors.Is(err, store.ErrUnavailable) {
		return fmt.Errorf("%w (%v)", errWriteTimeout, err)
	}
	return err
}

// fresh waits until this instance has seen what a shared store holds
// for id now, before a write decides on it: this instance may not yet
// have seen another's write, or, cut off, not see it at all, and a
// decision made from memory (already exists, unchanged, a stale tag)
// would be wrong. It reads the store, then waits for the watch to bring
// memory up to that read (the watch applies writes in order; a read
// applied here could be older than what the watch has already given).
// It fails, with an unavailable error, when the store cannot be read or
// memory does not catch up within the write's time. A store that is this
// Manager's alone needs no read: memory is the truth.
func (m *Manager) fresh(ctx context.Context, id string) error {
	_, err := m.freshGone(ctx, id)
	return err
}

// freshGone is fresh, and says whether the store had no record id.
func (m *Manager) freshGone(ctx context.Context, id string) (bool, error) {
	if !m.shared {
		return false, nil
	}
	m.mu.Lock()
	before := m.conns[id]
	var held int64
	if before != nil {
		held = before.rec.Revision
	}
	m.mu.Unlock()
	var rec store.Record
	err := m.timed("get", func() (err error) {
		rec, err = m.store.Get(ctx, id)
		return err
	})
	gone := errors.Is(err, store.ErrNotFound)
	if err != nil && !gone {
		return false, unreadable(id, stored(ctx, err))
	}
	return gone, m.caughtUp(ctx, id, func() bool {
		if gone {
			// The entry read before is no longer here, or is newer.
			e := m.conns[id]
			return e == nil || !e.stored || e != before || e.rec.Revision > held || held == 0
		}
		return m.covers(rec)
	}, m.askProgress())
}

// caughtUp waits until seen (called with m.mu held) is true, re-checked
// at each change the watch applies. ask, if not nil, asks the store for
// its watch's progress, again at each period of waiting: a notice can be
// lost with the watch's stream.
func (m *Manager) caughtUp(ctx context.Context, id string, seen func() bool, ask func(context.Context) error) error {
	var again *time.Timer
	var tick <-chan time.Time
	for {
		m.mu.Lock()
		ok, ch := seen(), m.progress
		m.mu.Unlock()
		if ok {
			return nil
		}
		if ask != nil && tick == nil {
			ask(ctx) // no answer is what the wait is for
			if again == nil {
				again = time.NewTimer(100 * time.Millisecond)
				defer again.Stop()
			} else {
				again.Reset(100 * time.Millisecond)
			}
			tick = again.C
		}
		select {
		case <-ch:
		case <-tick:
			tick = nil
		case <-ctx.Done():
			return unreadable(id, fmt.Errorf("%w: this instance has not yet seen the store's last write (its watch is behind)", store.ErrUnavailable))
		}
	}
}

// covers reports whether memory holds the record r or something newer:
// a later write of it, or its delete. It never trusts a revision the
// watch says it has reached without a write, as etcd 3.4 may say so of a
// watch it has not yet caught up. m.mu must be held.
func (m *Manager) covers(r store.Record) bool {
	if e := m.conns[r.ID]; e != nil && e.stored && e.rec.Revision >= r.Revision {
		return true
	}
	return m.gone[r.ID] >= r.Revision || m.tombs[r.ID] >= r.Revision && m.tombs[r.ID] > 0
}

// askProgress is how a wait for the watch asks the store for its
// progress (which also finds a watch that hangs), or nil.
func (m *Manager) askProgress() func(context.Context) error {
	if sn, ok := m.store.(store.Snapshotter); ok {
		return sn.RequestProgress
	}
	return nil
}

// advance wakes the writes that wait on memory: the watch applied a
// change, or told its progress (up to rev; a hint, never proof).
func (m *Manager) advance(int64) {
	m.mu.Lock()
	close(m.progress)
	m.progress = make(chan struct{})
	m.mu.Unlock()
}

// unreadable is the error of a write that could not read the store to
// decide: nothing was changed.
func unreadable(id string, err error) error {
	what := "connection " + quote(id)
	if id == "" {
		what = "the connections"
	}
	code := CodeInternal
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		code = CodeUnavailable
	}
	if errors.Is(err, context.Canceled) {
		code = CodeDeadlineExceeded
	}
	return &Error{Code: code, ID: id, Err: err,
		Message: fmt.Sprintf("%s: the store could not be read to decide the write, so nothing was changed; retry: %v", what, err)}
}

// Fresh returns the connection id as the store holds it now, bringing
// this instance up to date with it first; Get reads memory only. With a
// store this Manager has alone, it is Get.
func (m *Manager) Fresh(ctx context.Context, id string) (Info, error) {
	if err := checkID(id); err != nil {
		return Info{}, err
	}
	ctx, cancel := m.writing(ctx)
	defer cancel()
	gone, err := m.freshGone(ctx, id)
	if err != nil {
		return Info{}, err
	}
	if gone {
		// The store said so: memory may yet apply a create older than
		// the delete the read saw.
		return Info{}, notFound(id)
	}
	return m.Get(id)
}

// guard runs a store call and turns a panic in it into an error, so that a
// faulty Store cannot leave a write marked in flight forever.
func guard(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the store panicked: %v", p)
		}
	}()
	return f()
}

// settle ends the write in flight on e. m.mu must be held.
func settle(e *entry) {
	close(e.busy)
	e.busy = nil
}

// Create validates spec, stores it, and starts dialing in the background.
// Nothing is stored if spec is invalid.
func (m *Manager) Create(ctx context.Context, spec Spec) (Info, error) {
	if err := checkID(spec.ID); err != nil {
		return Info{}, err
	}
	p, err := m.validate(spec, nil, "")
	if err != nil {
		return Info{}, err
	}
	l := p.live
	ctx, cancel := m.writing(ctx)
	defer cancel()
	m.mu.Lock()
	if old := m.conns[spec.ID]; m.shared && old != nil && old.stored {
		// Already exists, says memory: the store decides.
		m.mu.Unlock()
		if err := m.fresh(ctx, spec.ID); err != nil {
			l.stop()
			return Info{}, err
		}
		m.mu.Lock()
	}
	e := &entry{refs: map[string]*refState{}, busy: make(chan struct{}), schema: p.schema}
	old, err := m.idle(ctx, spec.ID)
	if err != nil {
		l.stop()
		return Info{}, err
	}
	if old != nil {
		m.mu.Unlock()
		l.stop()
		return Info{}, storeError(spec.ID, "create", store.ErrExists)
	}
	if len(m.conns) >= m.maxConns {
		m.mu.Unlock()
		l.stop()
		return Info{}, &Error{Code: CodeLimitExceeded, ID: spec.ID,
			Message: fmt.Sprintf("connection %s cannot be created: there are %d connections, the most allowed; delete some first", quote(spec.ID), m.maxConns)}
	}
	if other := m.claimed(p.identity, spec.ID); other != "" {
		m.mu.Unlock()
		l.stop()
		return Info{}, identityTaken(spec.ID, other, p.idField)
	}
	e.claim = p.identity
	m.put(spec.ID, e)
	m.mu.Unlock()

	var rec store.Record
	err = m.timed("create", func() (err error) {
		props, err := m.toStore(p)
		if err != nil {
			return err
		}
		rec, err = m.store.Create(ctx, store.Record{ID: spec.ID, Type: spec.Type, Props: props})
		return stored(ctx, err)
	})
	m.mu.Lock()
	if err != nil {
		m.remove(spec.ID)
		settle(e)
		m.mu.Unlock()
		l.stop()
		return Info{}, storeError(spec.ID, "create", err)
	}
	e.rec, e.stored, e.live, e.broken = rec, true, l, p.broken
	e.identity, e.claim = p.identity, ""
	e.setProps(p.props)
	m.changed(EventCreated, e, false)
	if !m.closed {
		l.start(&m.wg)
	}
	settle(e)
	snap := e.snapshot()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		l.stop()
	}
	m.log.Info("connection created", "connection", spec.ID, "type", spec.Type, "version", rec.Version)
	return snap.info(false), nil
}

// Update replaces the type and props of the connection spec.ID. If
// ifMatch is not the zero Tag it must be the stored one (Info.Tag). A prop that carries
// secret.Mask keeps its stored secret, as long as the endpoint props
// (the server, host, port, database) are unchanged; otherwise the secret
// must be given again. The update is refused while the
// connection has refs. It is atomic: the new spec is validated and stored
// first, and only then is the live connection replaced; on any failure the
// old one stays stored and running.
func (m *Manager) Update(ctx context.Context, spec Spec, ifMatch Tag) (Info, error) {
	if err := checkID(spec.ID); err != nil {
		return Info{}, err
	}
	if _, err := m.lookup(spec.Type); err != nil {
		return Info{}, err
	}
	ctx, cancel := m.writing(ctx)
	defer cancel()
	for {
		in, err := m.update(ctx, spec, ifMatch)
		if !m.again(ctx, ifMatch, err) {
			return in, err
		}
	}
}

// again says whether a write with no precondition (ifMatch zero) that
// failed with err is tried again: another instance wrote the record
// between this one's read and its write (the store refused the tag it
// read), which asks for no answer of version_mismatch, as nothing was
// asked to match.
func (m *Manager) again(ctx context.Context, ifMatch Tag, err error) bool {
	var ce *Error
	return m.shared && ifMatch == (Tag{}) && ctx.Err() == nil && errors.As(err, &ce) && ce.Code == CodeVersionMismatch
}

func (m *Manager) update(ctx context.Context, spec Spec, ifMatch Tag) (Info, error) {
	if err := m.fresh(ctx, spec.ID); err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	e, err := m.acquire(ctx, spec.ID)
	if err != nil {
		return Info{}, err
	}
	if err := m.writable(e, "updated", ifMatch); err != nil {
		m.mu.Unlock()
		return Info{}, err
	}
	prev, prevType, at := e.props, e.rec.Type, e.rec.Tag()
	e.busy = make(chan struct{})
	m.mu.Unlock()

	var l *live
	p, err := m.validate(spec, prev, prevType)
	if err == nil {
		m.mu.Lock()
		if other := m.claimed(p.identity, spec.ID); other != "" {
			err = identityTaken(spec.ID, other, p.idField)
			p.live.stop()
		} else {
			e.claim = p.identity
		}
		m.mu.Unlock()
	}
	if err == nil {
		l = p.live
		var rec store.Record
		err = m.timed("update", func() (err error) {
			props, err := m.toStore(p)
			if err != nil {
				return err
			}
			rec, err = m.store.Update(ctx, store.Record{ID: spec.ID, Type: spec.Type, Props: props}, at)
			return stored(ctx, err)
		})
		if err != nil {
			l.stop()
			err = storeError(spec.ID, "update", err)
		} else {
			m.mu.Lock()
			old := e.live
			if old != nil {
				old.mute()
			}
			e.rec, e.schema, e.live, e.broken = rec, p.schema, l, p.broken
			e.identity = p.identity
			e.setProps(p.props)
			m.changed(EventUpdated, e, false)
			m.mu.Unlock()
			// The old link goes before the new one dials, so that the two
			// never fight over a client id.
			if old != nil {
				old.stop()
			}
		}
	}
	m.mu.Lock()
	e.claim = ""
	if err == nil && !m.closed {
		l.start(&m.wg)
	}
	settle(e)
	snap := e.snapshot()
	closed := m.closed
	m.mu.Unlock()
	if err != nil {
		return Info{}, err
	}
	if closed {
		l.stop()
	}
	m.log.Info("connection updated", "connection", spec.ID, "type", spec.Type, "version", snap.rec.Version)
	return snap.info(false), nil
}

// writable refuses a write on e while it has refs or if ifMatch is
// stale. m.mu must be held.
func (m *Manager) writable(e *entry, op string, ifMatch Tag) error {
	if len(e.refs) > 0 {
		return inUse(e.rec.ID, op, e.refNames())
	}
	if ifMatch != (Tag{}) && ifMatch != e.rec.Tag() {
		msg := fmt.Sprintf("connection %s is at version %d, not %d; read it again and retry", quote(e.rec.ID), e.rec.Version, ifMatch.Version)
		if ifMatch.Incarnation != e.rec.Incarnation {
			msg = fmt.Sprintf("connection %s was deleted and created again since that tag was read (incarnation %d, not %d); read it again and retry", quote(e.rec.ID), e.rec.Incarnation, ifMatch.Incarnation)
		}
		return &Error{Code: CodeVersionMismatch, ID: e.rec.ID, Message: msg}
	}
	return nil
}

// Delete removes the connection id and closes its live connection. If
// ifMatch is not the zero Tag it must be the stored one (Info.Tag). It is refused while the
// connection has refs.
func (m *Manager) Delete(ctx context.Context, id string, ifMatch Tag) error {
	if err := checkID(id); err != nil {
		return err
	}
	ctx, cancel := m.writing(ctx)
	defer cancel()
	for {
		err := m.delete(ctx, id, ifMatch)
		if !m.again(ctx, ifMatch, err) {
			return err
		}
	}
}

func (m *Manager) delete(ctx context.Context, id string, ifMatch Tag) error {
	if err := m.fresh(ctx, id); err != nil {
		return err
	}
	m.mu.Lock()
	e, err := m.acquire(ctx, id)
	if err != nil {
		return err
	}
	if err := m.writable(e, "deleted", ifMatch); err != nil {
		m.mu.Unlock()
		return err
	}
	at := e.rec.Tag()
	e.busy = make(chan struct{})
	m.mu.Unlock()

	err = m.timed("delete", func() error { return stored(ctx, m.store.Delete(ctx, id, at)) })
	m.mu.Lock()
	if err == nil {
		m.remove(id)
		if m.tombs != nil {
			m.tombs[id] = e.rec.Revision
		}
		m.changed(EventDeleted, e, false)
	}
	settle(e)
	l := e.live
	m.mu.Unlock()
	if err != nil {
		return storeError(id, "delete", err)
	}
	if l != nil {
		l.stop()
	}
	m.log.Info("connection deleted", "connection", id)
	return nil
}

// Get returns the connection id. It reads memory only and never dials.
func (m *Manager) Get(id string) (Info, error) {
	if err := checkID(id); err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	e := m.conns[id]
	if e == nil || !e.stored {
		m.mu.Unlock()
		return Info{}, notFound(id)
	}
	s := e.snapshot()
	m.mu.Unlock()
	return s.info(false), nil
}

// List returns every connection sorted by id. It never dials. The Props
// of what it returns are the Manager's own, to read: copy them
// (connector.Props.Clone) to change them.
func (m *Manager) List() []Info {
	out, _ := m.Page("", -1)
	return out
}

// Page returns, sorted by id, at most limit connections (all if limit is
// negative) whose id sorts after after, and whether more follow. Paging
// with the last id of each page as the next after lists every connection
// once. It never dials. As with List, the Props are the Manager's own, to
// read.
func (m *Manager) Page(after string, limit int) (page []Info, more bool) {
	es, more := m.page(after, limit)
	out := make([]Info, 0, len(es))
	m.mu.Lock()
	for _, e := range es {
		if e.stored && m.conns[e.rec.ID] == e { // not deleted meanwhile
			out = append(out, e.snapshot().info(true))
		}
	}
	m.mu.Unlock()
	return out, more
}

// page returns the entries of a Page, sorted.
func (m *Manager) page(after string, limit int) ([]*entry, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, found := slices.BinarySearch(m.ids, after)
	if found {
		i++
	}
	n := len(m.ids) - i
	if limit >= 0 && limit < n {
		n = limit
	}
	es := make([]*entry, 0, n)
	for _, id := range m.ids[i:] {
		e := m.conns[id]
		if !e.stored {
			continue
		}
		if limit >= 0 && len(es) == limit {
			return es, true
		}
		es = append(es, e)
	}
	return es, false
}

// put adds e under id to conns, and id to ids in order. m.mu must be held.
func (m *Manager) put(id string, e *entry) {
	if _, ok := m.conns[id]; !ok {
		i, _ := slices.BinarySearch(m.ids, id)
		m.ids = slices.Insert(m.ids, i, id)
	}
	m.conns[id] = e
}

// remove takes id out of conns and ids. m.mu must be held.
func (m *Manager) remove(id string) {
	if i, ok := slices.BinarySearch(m.ids, id); ok {
		m.ids = slices.Delete(m.ids, i, i+1)
	}
	delete(m.conns, id)
}

// AppendPageJSON appends to dst the connections of Page(after, limit) as
// a JSON array, and returns the id of the last and whether more follow.
// The JSON of each connection is kept until its version, status or refs
// change, so that a list of many connections encodes only what changed.
func (m *Manager) AppendPageJSON(dst []byte, after string, limit int) (out []byte, last string, more bool) {
	es, more := m.page(after, limit)
	// One pass under the lock: the kept JSON of each connection that has
	// not changed since, a snapshot of each that has.
	type part struct {
		json  []byte
		snap  *snapshot
		key   infoKey
		fresh bool
	}
	parts := make([]part, 0, len(es))
	size := 2
	m.mu.Lock()
	for _, e := range es {
		if !e.stored || m.conns[e.rec.ID] != e {
			continue
		}
		st := e.broken
		if e.live != nil {
			st = e.live.status()
		}
		key := infoKey{tag: e.rec.Tag(), status: st, refsGen: e.refsGen}
		if e.live != nil {
			key.activity = e.live.lastActivity()
		}
		if e.json != nil && e.jsonKey == key {
			parts = append(parts, part{json: e.json})
			size += len(e.json) + 1
			continue
		}
		s := e.snapshot()
		parts = append(parts, part{snap: &s, key: key, fresh: true})
		size += 512
	}
	if len(es) > 0 {
		last = es[len(es)-1].rec.ID
	}
	m.mu.Unlock()
	// Encode what changed, outside the lock, and keep it.
	for i := range parts {
		if p := &parts[i]; p.fresh {
			// The status the key was made of, not one read later, so
			// the kept JSON is never of another state than its key.
			in := p.snap.info(true)
			in.Status, in.LastActivityAt = p.key.status, p.key.activity
			b, err := json.Marshal(in)
			if err != nil {
				b = []byte("null")
			}
			p.json = b
		}
	}
	if n := len(dst) + size; cap(dst) < n {
		dst = append(make([]byte, 0, n), dst...)
	}
	dst = append(dst, '[')
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, p.json...)
	}
	dst = append(dst, ']')
	m.mu.Lock()
	for _, p := range parts {
		// Kept only if the connection is still as it was encoded.
		if e := p.snap; p.fresh && e.e.rec.Tag() == p.key.tag && e.e.refsGen == p.key.refsGen {
			e.e.json, e.e.jsonKey = p.json, p.key
		}
	}
	m.mu.Unlock()
	return dst, last, more
}

// setProps sets the props of e and their masked form. m.mu must be held.
func (e *entry) setProps(props map[string]any) {
	e.props = props
	if e.schema != nil {
		e.masked = secret.MaskProps(e.schema, props)
		return
	}
	// Without a schema nothing tells a secret apart: hide every value.
	e.masked = make(map[string]any, len(props))
	for k := range props {
		e.masked[k] = secret.Mask
	}
}

// snapshot is what an Info is built from, copied under m.mu so that the
// copying of props happens outside it.
type snapshot struct {
	e       *entry
	rec     store.Record
	masked  map[string]any
	live    *live
	broken  Status
	refs    []string
	holds   int
	refsGen uint64
}

// infoKey says which state of a connection its cached JSON is of.
type infoKey struct {
	tag      Tag
	status   Status
	refsGen  uint64
	activity time.Time
}

// snapshot copies what Info needs. m.mu must be held.
func (e *entry) snapshot() snapshot {
	return snapshot{e: e, rec: e.rec, masked: e.masked, live: e.live, broken: e.broken, refs: e.refNames(), holds: e.holdCount(),
		refsGen: e.refsGen}
}

func (s snapshot) status() Status {
	if s.live != nil {
		return s.live.status()
	}
	return s.broken
}

// info builds the Info; it needs no lock of the Manager. Its Props are a
// copy of the Manager's, or, if shared, the Manager's own, never modified
// by it.
func (s snapshot) info(shared bool) Info {
	in := Info{
		ID: s.rec.ID, Type: s.rec.Type, Props: s.masked,
		RefCount: s.holds, Refs: s.refs, Status: s.status(),
		Version: s.rec.Version, Incarnation: s.rec.Incarnation, CreatedAt: s.rec.CreatedAt, UpdatedAt: s.rec.UpdatedAt,
	}
	if s.live != nil {
		in.LastActivityAt = s.live.lastActivity()
	}
	if !shared || in.Props == nil {
		in.Props = connector.Props(s.masked).Clone()
		if in.Props == nil {
			in.Props = map[string]any{}
		}
	}
	return in
}

// Resolve returns the stored spec of the connection id with its secrets in
// clear, for a connectivity check of a configuration that names the
// connection. Never show what it returns.
func (m *Manager) Resolve(id string) (Spec, error) {
	if err := checkID(id); err != nil {
		return Spec{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.conns[id]
	if e == nil || !e.stored {
		return Spec{}, notFound(id)
	}
	return Spec{ID: id, Type: e.rec.Type, Props: connector.Props(e.props).Clone()}, nil
}

// MaxPropsBytes returns the most bytes of JSON the props of one
// connection may have (Options.MaxPropsBytes).
func (m *Manager) MaxPropsBytes() int { return m.maxProps }

// Policy returns what the Manager lets connections do on the host.
func (m *Manager) Policy() *connector.Policy { return m.policy }

// Registry returns the registry of the types this Manager runs.
func (m *Manager) Registry() *registry.Registry { return m.reg }

// Types returns the connection types this Manager can run, sorted by name,
// with their property schemas.
func (m *Manager) Types() []registry.Info { return m.reg.List() }

// Close closes every live connection and waits for every dial loop to
// end. Writes and attaches after Close fail with ErrUnavailable; Get and
// List still answer. Close does not close the store.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	if m.unfollow != nil {
		m.unfollow()
		m.followed.Wait()
	}
	m.mu.Lock()
	var lives []*live
	for _, e := range m.conns {
		if e.live != nil {
			lives = append(lives, e.live)
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range lives {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.stop()
		}()
	}
	wg.Wait()
	if m.watchers != nil {
		m.watchers.close()
	}
	m.wg.Wait()
	m.bus.close()
	return nil
}

// status is e's current status. m.mu must be held.
func (e *entry) status() Status {
	if e.live != nil {
		return e.live.status()
	}
	return e.broken
}

// changed publishes a created, updated or deleted event of e; remote if
// another instance made the change. m.mu must be held, so that the event
// comes before any status event of a new live.
func (m *Manager) changed(kind EventKind, e *entry, remote bool) {
	ev := Event{Kind: kind, ID: e.rec.ID, Type: e.rec.Type, Remote: remote}
	if kind == EventDeleted {
		if e.live != nil {
			e.live.mute()
		}
	} else {
		st := e.status()
		ev.Version, ev.Status = e.rec.Version, &st
	}
	m.bus.publish(ev)
}

// Reconnect closes the link of the connection id and dials it again now,
// without waiting out a backoff; its refs keep their clients. Use it once
// the peer is fixed. It returns once the redial is asked, not dialed.
func (m *Manager) Reconnect(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	m.mu.Lock()
	e := m.conns[id]
	if e == nil || !e.stored {
		m.mu.Unlock()
		return notFound(id)
	}
	l := e.live
	m.mu.Unlock()
	if l == nil {
		return m.reopen(ctx, id)
	}
	l.reconnect()
	return nil
}

// reopen makes a live for the connection id that cannot run, from its
// stored props, as a start would: a secret reference that can be read
// now makes it run. It says why if it still cannot.
func (m *Manager) reopen(ctx context.Context, id string) error {
	m.mu.Lock()
	e, err := m.acquire(ctx, id)
	if err != nil {
		return err
	}
	if e.live != nil {
		m.mu.Unlock()
		e.live.reconnect()
		return nil
	}
	props := e.props
	ne := &entry{rec: e.rec, refs: map[string]*refState{}, stored: true}
	e.busy = make(chan struct{})
	m.mu.Unlock()

	// A file reference is read here: without the lock.
	err = m.prepare(ne, props, nil)
	m.mu.Lock()
	if err == nil && !m.closed {
		e.live, e.broken = ne.live, Status{}
		st := e.live.status()
		m.bus.publish(Event{Kind: EventStatus, ID: id, Type: e.rec.Type, Status: &st})
		e.live.start(&m.wg)
	} else if err != nil {
		e.broken = ne.broken
		e.refsGen++ // the kept JSON has the old error
	}
	settle(e)
	m.mu.Unlock()
	if err != nil {
		return &Error{Code: CodeInvalidArgument, ID: id, Err: err,
			Message: fmt.Sprintf("connection %s cannot run, so it cannot reconnect: %s; update it", quote(id), ne.broken.Err)}
	}
	return nil
}

// Ready returns nil while the Manager is open and its store answers: the
// stored connections were loaded by New.
func (m *Manager) Ready(ctx context.Context) error {
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		return errClosed
	}
	// Any read will do: one of an id that is never stored costs least.
	_, err := m.store.Get(ctx, "readyz-probe-of-the-store")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return &Error{Code: CodeUnavailable, Err: err, Message: "the store does not answer: " + err.Error()}
	}
	return nil
}
