package connection

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"time"
)

// EventKind says what an Event reports.
type EventKind string

// The kinds of Event.
const (
	EventCreated  EventKind = "created"
	EventUpdated  EventKind = "updated"
	EventDeleted  EventKind = "deleted"
	EventStatus   EventKind = "status" // the state changed, or whether retrying can help
	EventAttached EventKind = "attached"
	EventDetached EventKind = "detached"
	// EventRevoked: another instance changed the connection under the
	// attaches of Ref here, which are ended (Handle.Done).
	EventRevoked EventKind = "revoked"
	// EventRefsLapsed: this instance's refs on the connection may have
	// lapsed (the store unreached for longer than their time-to-live):
	// other instances may now change it. EventRefsHeld: they hold again.
	EventRefsLapsed EventKind = "refs_lapsed"
	EventRefsHeld   EventKind = "refs_held"
	// EventLagged tells a subscriber that read too slowly that events up
	// to Seq were dropped: read the current state (List) again; the
	// events after Seq follow.
	EventLagged EventKind = "lagged"
	// EventReset tells a subscriber that resumed from a sequence number
	// that is no longer retained (or from before a restart) to read the
	// current state again; the events after Seq follow.
	EventReset EventKind = "reset"
)

// Event is one change of the Manager's connections. Seq only grows, by one
// per event, and across restarts too: a Manager numbers its first event
// after the microseconds since the epoch at New.
type Event struct {
	Seq  uint64    `json:"seq"`
	Kind EventKind `json:"kind"`
	ID   string    `json:"id,omitempty"`
	Type string    `json:"typ,omitempty"`
	Time time.Time `json:"time"`
	// Version is the stored version, for created and updated.
	Version int64 `json:"version,omitempty"`
	// Status is the new status, for status, created and updated.
	Status *Status `json:"status,omitempty"`
	// Previous is the state before Status, for a status event of a
	// running connection: with Status.Since, it tells how long an outage
	// lasted ("disconnected at T, connected at T+d").
	Previous State `json:"previous,omitempty"`
	// Ref is the ref name, for attached and detached.
	Ref string `json:"ref,omitempty"`
	// Remote says that another instance sharing the store made the
	// change.
	Remote bool `json:"remote,omitempty"`
}

// SubscribeOptions select the events of a subscription.
type SubscribeOptions struct {
	// From, if not 0, first replays the retained events whose Seq is at
	// least From. If those are no longer retained (or From is past the
	// last event, as after a restart), the first event is EventReset.
	// 0 means only the events after the subscription.
	From uint64
	// Connection, if set, keeps only the events of that connection (and
	// lagged and reset).
	Connection string
	// Buffer is how many events may wait for a slow reader before it gets
	// EventLagged; default 256.
	Buffer int
}

// historyLen is how many status transitions a connection's history keeps.
const historyLen = 50

// bus numbers the events, keeps the last retain of them and the status
// history of each connection, and hands them to subscribers. It never
// blocks a publisher: a subscriber past its buffer is told it lagged.
type bus struct {
	mu      sync.Mutex
	seq     uint64
	ring    []Event // the last len(ring) events: event seq at ring[b.slot(seq)]
	base    uint64  // the seq before the first event
	retain  int
	subs    map[*sub]struct{}
	hist    map[string][]Status
	closed  bool
	done    chan struct{}
	readers sync.WaitGroup
}

type sub struct {
	q      []Event
	limit  int
	filter string
	wake   chan struct{}
}

func newBus(retain int) *bus {
	if retain <= 0 {
		retain = 1024
	}
	// The first number is the microseconds since the epoch: a process
	// starts above any number an earlier one gave (short of a clock set
	// back), so that a client that resumes from one of those is reset.
	start := uint64(time.Now().UnixMicro())
	return &bus{retain: retain, subs: map[*sub]struct{}{}, hist: map[string][]Status{}, done: make(chan struct{}),
		seq: start, base: start}
}

// publish numbers ev, keeps it, and queues it for every subscriber.
func (b *bus) publish(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev.Seq = b.seq
	switch {
	case ev.Kind == EventDeleted:
		delete(b.hist, ev.ID)
	case ev.Status != nil:
		h := append(b.hist[ev.ID], *ev.Status)
		if len(h) > historyLen {
			h = append(h[:0:0], h[len(h)-historyLen:]...)
		}
		b.hist[ev.ID] = h
	}
	if len(b.ring) < b.retain {
		b.ring = append(b.ring, ev)
	} else {
		b.ring[b.slot(ev.Seq)] = ev
	}
	for s := range b.subs {
		s.push(ev)
	}
}

func (s *sub) push(ev Event) {
	if s.filter != "" && ev.ID != s.filter {
		return
	}
	if len(s.q) >= s.limit {
		// Drop what waits: the reader re-reads the state instead.
		s.q = append(s.q[:0], Event{Seq: ev.Seq, Kind: EventLagged, Time: ev.Time})
	} else {
		s.q = append(s.q, ev)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// slot is where the event seq is kept in the ring.
func (b *bus) slot(seq uint64) uint64 { return (seq - b.base - 1) % uint64(b.retain) }

// retained returns the kept events from Seq from on, or false if some of
// them are no longer kept. b.mu must be held.
func (b *bus) retained(from uint64) ([]Event, bool) {
	oldest := b.seq - uint64(len(b.ring)) + 1
	if from > b.seq+1 || from < oldest {
		return nil, false
	}
	out := make([]Event, 0, b.seq+1-from)
	for seq := from; seq <= b.seq; seq++ {
		out = append(out, b.ring[b.slot(seq)])
	}
	return out, true
}

func (b *bus) subscribe(ctx context.Context, o SubscribeOptions) <-chan Event {
	out := make(chan Event)
	s := &sub{filter: o.Connection, limit: o.Buffer, wake: make(chan struct{}, 1)}
	if s.limit <= 0 {
		s.limit = 256
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(out)
		return out
	}
	if o.From > 0 {
		evs, ok := b.retained(o.From)
		if !ok {
			s.q = append(s.q, Event{Seq: b.seq, Kind: EventReset, Time: time.Now().UTC()})
		}
		for _, ev := range evs {
			if s.filter == "" || ev.ID == s.filter {
				s.q = append(s.q, ev)
			}
		}
		s.limit += len(s.q) // a replay does not count as lagging
	}
	b.subs[s] = struct{}{}
	b.readers.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.readers.Done()
		defer close(out)
		defer func() {
			b.mu.Lock()
			delete(b.subs, s)
			b.mu.Unlock()
		}()
		for {
			b.mu.Lock()
			batch := s.q
			s.q = nil
			b.mu.Unlock()
			for _, ev := range batch {
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				case <-b.done:
					return
				}
			}
			if len(batch) > 0 {
				continue
			}
			select {
			case <-s.wake:
			case <-ctx.Done():
				return
			case <-b.done:
				return
			}
		}
	}()
	return out
}

// close ends every subscription and waits for their goroutines.
func (b *bus) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	b.mu.Unlock()
	b.readers.Wait()
}

// seed starts the history of a connection loaded at start.
func (b *bus) seed(id string, st Status) {
	b.mu.Lock()
	b.hist[id] = []Status{st}
	b.mu.Unlock()
}

func (b *bus) history(id string) []Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Status{}, b.hist[id]...)
}

func (b *bus) last() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seq
}

// Subscribe returns the Manager's events, in order, on a channel that is
// closed when ctx ends or the Manager closes. A slow reader never blocks
// the Manager or another reader: past its buffer it gets EventLagged, and
// the events that follow.
func (m *Manager) Subscribe(ctx context.Context, o SubscribeOptions) <-chan Event {
	return m.bus.subscribe(ctx, o)
}

// Events is Subscribe as an iterator; the subscription ends when the loop
// does.
func (m *Manager) Events(ctx context.Context, o SubscribeOptions) iter.Seq[Event] {
	return func(yield func(Event) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for ev := range m.Subscribe(ctx, o) {
			if !yield(ev) {
				return
			}
		}
	}
}

// LastSeq returns the Seq of the last event, or, before the first, the
// number the first follows.
func (m *Manager) LastSeq() uint64 { return m.bus.last() }

// History returns the last 50 status transitions of the connection id,
// oldest first, each with the time it began.
func (m *Manager) History(id string) ([]Status, error) {
	if _, err := m.Get(id); err != nil {
		return nil, err
	}
	return m.bus.history(id), nil
}

// WaitConnected returns nil once the connection id is connected, or
// not_found if it does not exist or is deleted meanwhile, or, when ctx
// ends first, an error that wraps ctx's and says the last status.
func (m *Manager) WaitConnected(ctx context.Context, id string) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs := m.Subscribe(sctx, SubscribeOptions{Connection: id})
	for {
		in, err := m.Get(id)
		if err != nil {
			return err
		}
		if in.State == StateConnected {
			return nil
		}
		select {
		case _, ok := <-evs:
			if !ok && ctx.Err() == nil {
				return errClosed
			}
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			return waitError(id, in.Status, ctx.Err())
		}
	}
}

func waitError(id string, st Status, err error) error {
	msg := fmt.Sprintf("connection %s is not connected: %s", quote(id), st.State)
	if st.Err != "" {
		msg += ": " + st.Err
	}
	return &Error{Code: CodeDeadlineExceeded, ID: id, Message: msg, Err: err}
}
