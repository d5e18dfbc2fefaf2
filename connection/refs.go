package connection

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/connkit/connkit/connector"
)

// hold is one attach: the client it handed out and how to end it.
type hold struct {
	ref    string
	client any
	end    func() // ends the client of a connector.Viewer; nil otherwise
	handle bool   // made by Hold: only its Handle releases it
	// revoked is closed, and err set (under m.mu), when another instance
	// changed the connection under this attach.
	revoked chan struct{}
	err     error
}

// refState is every attach of one ref name. While it exists the
// connection is in use: it holds live attaches, attaches being released,
// or the connector's Release of the name.
type refState struct {
	holds   []*hold       // live, oldest first
	ending  int           // holds whose release is running
	release chan struct{} // non-nil while Releaser.Release runs; closed after
}

// noRefs is the Refs of a connection nobody holds, shared: appending to
// it makes a new slice.
var noRefs = []string{}

// refNames returns the ref names holding e, sorted. m.mu must be held.
func (e *entry) refNames() []string {
	if len(e.refs) == 0 {
		return noRefs
	}
	names := make([]string, 0, len(e.refs))
	for r := range e.refs {
		names = append(names, r)
	}
	slices.Sort(names)
	return names
}

// holdCount is how many attaches hold e. m.mu must be held.
func (e *entry) holdCount() int {
	n := 0
	for _, rs := range e.refs {
		n += len(rs.holds) + rs.ending
	}
	return n
}

// visible is a rune that shows: not a space, not a control or format
// character (such as a zero-width space).
func visible(r rune) bool { return unicode.IsGraphic(r) && !unicode.IsSpace(r) }

// maxRefLen bounds a ref name, which is shown in every listing.
const maxRefLen = 256

// checkRef refuses a ref that names no one: blank, too long, not UTF-8, or
// with control characters.
func checkRef(id, ref string) error {
	bad := func(msg string) error {
		return &Error{Code: CodeInvalidArgument, ID: id,
			Fields:  connector.FieldErrors{{Field: "ref", Message: msg}},
			Message: fmt.Sprintf("attach to connection %s: ref %q: %s", quote(id), connector.Short(ref), msg)}
	}
	switch {
	case !strings.ContainsFunc(ref, visible):
		return bad("blank; give the name of the user, such as rule1/source")
	case len(ref) > maxRefLen:
		return bad(fmt.Sprintf("%d bytes; give at most %d", len(ref), maxRefLen))
	case !utf8.ValidString(ref):
		return bad("not valid UTF-8")
	case strings.ContainsFunc(ref, unicode.IsControl):
		return bad("has control characters; use printable ones, such as rule1/source")
	}
	return nil
}

// Attach records ref as a user of the connection id and returns the
// client it may use (see the connector package of the type for a typed
// Attach). The client is returned even while the link is down: it is the
// connector's to buffer or fail.
//
// Every successful Attach holds the connection, so that it can be neither
// updated nor deleted, until it is released by Detach(id, ref). Several
// attaches may use one ref name (a rule that restarts while its old
// instance stops): the count is kept per name, each attach needs its own
// Detach, and Detach releases the oldest. Hold gives a Handle that
// releases exactly its own attach. Refs name their users, for example
// "rule1/source".
//
// A connector that hands out views (connector.Viewer) scopes the client to
// this attach: once it is released, every operation on the client fails
// with connector.ErrDetached and it receives nothing more.
func (m *Manager) Attach(ctx context.Context, id, ref string) (any, error) {
	h, err := m.attach(ctx, id, ref, nil, false)
	if err != nil {
		return nil, err
	}
	return h.client, nil
}

// AttachIf is Attach with a check of the client before anything is
// recorded: if accept returns an error, no ref is left behind and the
// error says why. The typed Attach functions of the connector packages use
// it to refuse a connection of another type. It implements
// connector.Attacher.
func (m *Manager) AttachIf(ctx context.Context, id, ref string, accept func(client any) error) (any, error) {
	h, err := m.attach(ctx, id, ref, accept, false)
	if err != nil {
		return nil, err
	}
	return h.client, nil
}

var _ connector.Attacher = (*Manager)(nil)

// Handle is one attach of a connection, held until Close, as database/sql's
// Conn holds one connection of a pool.
type Handle struct {
	m  *Manager
	id string
	e  *entry
	h  *hold
}

// Hold attaches ref to the connection id, as Attach does, and returns a
// Handle whose Close releases exactly this attach, whatever other
// attaches of the same ref name do: Detach never releases it.
func (m *Manager) Hold(ctx context.Context, id, ref string) (*Handle, error) {
	h, err := m.attach(ctx, id, ref, nil, true)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	e := m.conns[id] // held, so it cannot have gone
	m.mu.Unlock()
	return &Handle{m: m, id: id, e: e, h: h}, nil
}

// Client returns the client of this attach.
func (h *Handle) Client() any { return h.h.client }

// ID returns the connection's id.
func (h *Handle) ID() string { return h.id }

// Ref returns the ref name of this attach.
func (h *Handle) Ref() string { return h.h.ref }

// Done is closed when the attach is revoked: another instance sharing
// the store updated or deleted the connection under it, which it can
// only do once this instance's refs lapsed (cut off from the store for
// longer than their time-to-live). The client is ended then; Err says
// why. Attach again.
func (h *Handle) Done() <-chan struct{} { return h.h.revoked }

// Err is nil until Done is closed, and then an error that wraps
// ErrRevoked and says what happened.
func (h *Handle) Err() error {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.h.err
}

// ErrRevoked is the error of an attach that another instance changed the
// connection under; see Handle.Done.
var ErrRevoked = errors.New("attach revoked")

// revoke ends every attach of e, which another instance has changed (what
// says how): their refs had lapsed, or no instance could have. m.mu must
// be held; the caller stops the holds returned and releases their refs
// after unlocking.
func (m *Manager) revoke(e *entry, what string) []*hold {
	var out []*hold
	for name, rs := range e.refs {
		for _, h := range rs.holds {
			h.err = fmt.Errorf("%w: connection %s was %s by another instance while attached here as %s (this instance's refs had lapsed: it was cut off from the store for longer than their time-to-live); attach again", ErrRevoked, quote(e.rec.ID), what, quote(h.ref))
			close(h.revoked)
			out = append(out, h)
		}
		if len(rs.holds) > 0 {
			m.bus.publish(Event{Kind: EventRevoked, ID: e.rec.ID, Type: e.rec.Type, Ref: name, Remote: true})
		}
		rs.holds = nil
		if rs.ending == 0 && rs.release == nil {
			delete(e.refs, name)
		}
	}
	if len(out) > 0 {
		e.refsGen++
	}
	return out
}

// RefsLapsed reports whether this instance's refs may have lapsed (its
// store is a store.RefLease, unreached for longer than their
// time-to-live): until they hold again, other instances may change the
// connections used here, whose attaches are then revoked.
func (m *Manager) RefsLapsed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lapsed
}

// refsLease tells, when the store's refs lapse or hold again, the
// connections this instance uses: from a lapse on, another instance may
// change them.
func (m *Manager) refsLease(held bool) {
	kind := EventRefsHeld
	if !held {
		kind = EventRefsLapsed
	}
	m.mu.Lock()
	m.lapsed = !held
	var ids []string
	for id, e := range m.conns {
		if len(e.refs) > 0 {
			ids = append(ids, id)
			m.bus.publish(Event{Kind: kind, ID: id, Type: e.rec.Type})
		}
	}
	m.mu.Unlock()
	slices.Sort(ids)
	if !held {
		m.log.Warn("refs of this instance may have lapsed (the store unreached for longer than their time-to-live): other instances may now update or delete the connections used here, whose attaches are then revoked", "connections", ids)
	} else {
		m.log.Info("refs of this instance hold again", "connections", ids)
	}
}

// Close releases this attach. It is idempotent and returns nil.
func (h *Handle) Close() error {
	h.m.mu.Lock()
	rs := h.e.refs[h.h.ref]
	i := -1
	if rs != nil {
		i = slices.Index(rs.holds, h.h)
	}
	if i < 0 {
		h.m.mu.Unlock()
		return nil
	}
	h.m.release(h.e, rs, i) // unlocks
	return nil
}

// Detach releases the oldest attach of ref on the connection id that
// Attach made (a Handle's is released by its Close only). Detaching a ref
// that is not attached, or from a connection that does not exist, does
// nothing.
func (m *Manager) Detach(id, ref string) {
	m.mu.Lock()
	e := m.conns[id]
	var rs *refState
	if e != nil {
		rs = e.refs[ref]
	}
	i := -1
	if rs != nil {
		i = slices.IndexFunc(rs.holds, func(h *hold) bool { return !h.handle })
	}
	if i < 0 {
		m.mu.Unlock()
		return
	}
	m.release(e, rs, i)
}

// attach records one attach of ref, once accept (if any) approved its
// client.
func (m *Manager) attach(ctx context.Context, id, ref string, accept func(any) error, handle bool) (*hold, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	if err := checkRef(id, ref); err != nil {
		return nil, err
	}
	for {
		m.mu.Lock()
		e, err := m.acquire(ctx, id)
		if err != nil {
			return nil, err
		}
		if e.live == nil {
			err := &Error{Code: CodeUnavailable, ID: id,
				Message: fmt.Sprintf("connection %s cannot run: %s; update it", quote(id), e.broken.Err)}
			m.mu.Unlock()
			return nil, err
		}
		if rs := e.refs[ref]; rs != nil && rs.release != nil {
			// The name's last attach is being released: wait, so that
			// the connector's Release cannot take what this one adds.
			ch := rs.release
			m.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, ctxError(id, "waiting for the release of "+ref, ctx.Err())
			}
			continue
		}
		l, typ := e.live, e.rec.Type
		m.mu.Unlock()

		// The client is made and approved without the lock; the attach is
		// recorded only if nothing changed meanwhile.
		h := &hold{ref: ref, handle: handle, revoked: make(chan struct{})}
		if v, ok := l.conn.(connector.Viewer); ok {
			h.client, h.end = v.View(ref)
		} else {
			h.client = l.conn.Client(ref)
		}
		if accept != nil {
			if err := accept(h.client); err != nil {
				h.stop()
				return nil, &Error{Code: CodeInvalidArgument, ID: id, Err: err,
					Fields:  connector.FieldErrors{{Field: "id", Message: err.Error()}},
					Message: fmt.Sprintf("connection %s (type %s) cannot be attached here: %v", quote(id), typ, err)}
			}
		}
		// In a shared store the attach is published first, so that no
		// instance updates or deletes the connection meanwhile.
		if err := m.holdRef(ctx, id, ref); err != nil {
			h.stop()
			return nil, err
		}
		m.mu.Lock()
		rs := e.refs[ref]
		if m.closed || m.conns[id] != e || e.live != l || e.busy != nil || (rs != nil && rs.release != nil) {
			m.mu.Unlock()
			h.stop()
			m.releaseRef(id, ref)
			continue
		}
		if rs == nil {
			rs = &refState{}
			e.refs[ref] = rs
		}
		rs.holds = append(rs.holds, h)
		e.refsGen++
		m.bus.publish(Event{Kind: EventAttached, ID: id, Type: e.rec.Type, Ref: ref})
		m.mu.Unlock()
		return h, nil
	}
}

func (h *hold) stop() {
	if h.end != nil {
		h.end()
	}
}

// release ends the hold rs.holds[i] of e. m.mu must be held; it is
// released. The connection stays in use until the client is ended and,
// for the last attach of the name, the connector's Release has run.
func (m *Manager) release(e *entry, rs *refState, i int) {
	h := rs.holds[i]
	rs.holds = slices.Delete(rs.holds, i, i+1)
	e.refsGen++
	rs.ending++
	m.bus.publish(Event{Kind: EventDetached, ID: e.rec.ID, Type: e.rec.Type, Ref: h.ref})
	l, id := e.live, e.rec.ID
	m.mu.Unlock()

	h.stop()
	m.releaseRef(id, h.ref)

	m.mu.Lock()
	last := len(rs.holds) == 0 && rs.ending == 1
	var r connector.Releaser
	if last && l != nil {
		r, _ = l.conn.(connector.Releaser)
	}
	if r == nil {
		rs.ending--
		e.refsGen++ // the count of attaches changed, last or not
		if last {
			delete(e.refs, h.ref)
		}
		m.mu.Unlock()
		return
	}
	rs.release = make(chan struct{})
	m.mu.Unlock()

	r.Release(h.ref)

	m.mu.Lock()
	rs.ending--
	delete(e.refs, h.ref)
	e.refsGen++
	close(rs.release)
	m.mu.Unlock()
}
