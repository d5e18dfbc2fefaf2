// Package scope is the lifetime of one attach's client, for connectors
// that implement connector.Viewer: a flag every operation of the view
// checks (Err), deliveries that stop for good when it ends (Send), and a
// key unique to the attach for its subscriptions (Key). View makes a New
// scope per view and returns End, wrapped with the view's own cleanup, as
// its end function.
package scope

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/connkit/connkit/connector"
)

var seq atomic.Uint64

// Scope is one attach's lifetime. The zero value is not usable; use New.
type Scope struct {
	ref  string
	key  string
	done chan struct{}
	once sync.Once
	send sync.Mutex // held by a delivery in progress
}

// New returns a live Scope for an attach of ref.
func New(ref string) *Scope {
	return &Scope{ref: ref, key: ref + "\x00" + strconv.FormatUint(seq.Add(1), 10), done: make(chan struct{})}
}

// Ref is the ref name of the attach.
func (s *Scope) Ref() string { return s.ref }

// Key is unique to this attach: the owner of its subscriptions, where
// several attaches may share one ref name.
func (s *Scope) Key() string { return s.key }

// End ends the scope and waits for a delivery in progress (Send) to
// finish; none starts after it returns. It is idempotent.
func (s *Scope) End() {
	s.once.Do(func() { close(s.done) })
	s.send.Lock()
	s.send.Unlock()
}

// Ended reports whether End was called.
func (s *Scope) Ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Done is closed when the scope ends.
func (s *Scope) Done() <-chan struct{} { return s.done }

// Err returns an error naming what (such as "mqtt") that matches
// connector.ErrDetached once the scope ended, and nil before.
func (s *Scope) Err(what string) error {
	if s.Ended() {
		return fmt.Errorf("%s: ref %s: %w", what, s.ref, connector.ErrDetached)
	}
	return nil
}

// Send delivers v on out unless the scope ends first, or a or b (either
// may be nil) is closed. It reports whether v was delivered.
func Send[T any](s *Scope, out chan<- T, v T, a, b <-chan struct{}) bool {
	s.send.Lock()
	defer s.send.Unlock()
	if s.Ended() {
		return false
	}
	select {
	case out <- v:
		return true
	case <-s.done:
	case <-a:
	case <-b:
	}
	return false
}
