// Package store defines where connection specs are kept.
//
// Every record carries a Tag, its incarnation and version: Create fails if
// the id exists, Update and Delete take the Tag the caller last read and
// fail if the record has moved on. A Tag never names two states of one id,
// not even across a delete and a create again: a guard on it can never
// come true again once it is false. A write is durable when the call
// returns without error.
//
// Implementations: store/memory (tests), store/sqlite (the embedded
// default) and store/etcd (several instances sharing one set).
// store/storetest is the conformance suite all run.
//
// A store that several processes share also implements Watcher, so that
// every Manager on it follows the writes of the others, and may implement
// RefHolder, so that no instance updates or deletes a connection that
// another one uses.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"time"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidID reports whether id is a valid connection id: 1 to 128
// characters of A-Z, a-z, 0-9, _ and -. A store that finds a key whose
// id is not valid (another application's, or a store under a nested
// prefix) ignores it.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Errors a Store returns; check with errors.Is.
var (
	ErrNotFound        = errors.New("store: record not found")
	ErrExists          = errors.New("store: record already exists")
	ErrVersionMismatch = errors.New("store: version mismatch")
	// ErrInUse is a write refused because an instance holds a ref on the
	// record (RefHolder); the error is an *InUseError.
	ErrInUse = errors.New("store: record in use")
	// ErrUnavailable is a store that did not answer in time. The write
	// may or may not have been applied: read again.
	ErrUnavailable = errors.New("store: unavailable")
)

// Ref is one ref name that one instance holds on a record.
type Ref struct {
	Instance string `json:"instance"`
	Name     string `json:"ref"`
}

// InUseError is ErrInUse with the refs that hold the record.
type InUseError struct {
	ID   string
	Refs []Ref
}

func (e *InUseError) Error() string { return "store: record " + e.ID + " in use" }

// Is makes errors.Is(err, ErrInUse) true.
func (e *InUseError) Is(target error) bool { return target == ErrInUse }

// Record is one stored connection.
type Record struct {
	ID   string
	Type string
	// Props is the JSON object of props as the user gave them, secrets
	// included.
	Props json.RawMessage
	// Version is 1 after Create and grows by one with each Update.
	Version int64
	// Incarnation tells apart the records one id has had: a record
	// created after a delete of the id has another one (greater, in the
	// stores here), so that no Tag of a deleted record names a later
	// one. etcd: the key's create revision.
	Incarnation int64
	// Revision orders the writes of a shared store (Watcher): a later
	// write, of any record, has a greater revision. 0 in a store that is
	// not shared.
	Revision  int64
	CreatedAt time.Time
	UpdatedAt time.Time
	// Err, if not nil, says why the store could not read the record
	// whole (its value is damaged): a Manager loads it as a connection
	// that cannot run, with the reason, so that it can be fixed or
	// deleted, and everything else runs.
	Err error
}

// Tag names one state of one record: its Incarnation and its Version.
// No two states an id ever has share a Tag.
type Tag struct {
	Incarnation int64
	Version     int64
}

// Tag returns the record's Tag.
func (r Record) Tag() Tag { return Tag{Incarnation: r.Incarnation, Version: r.Version} }

// Store keeps records. Implementations are safe for concurrent use.
type Store interface {
	// List returns every record sorted by ID.
	List(ctx context.Context) ([]Record, error)
	// Get returns the record id, or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Create stores rec with Version 1, a new Incarnation and both
	// timestamps set to now, and returns what it stored; ErrExists if
	// rec.ID is taken.
	Create(ctx context.Context, rec Record) (Record, error)
	// Update replaces the Type and Props of the record rec.ID if its Tag
	// is at, increments the version, sets UpdatedAt and returns what it
	// stored; ErrNotFound or ErrVersionMismatch otherwise. A Version of 0
	// in at is that of a record whose version is damaged (Record.Err):
	// the update mends it.
	Update(ctx context.Context, rec Record, at Tag) (Record, error)
	// Delete removes the record id if its Tag is at; ErrNotFound or
	// ErrVersionMismatch otherwise.
	Delete(ctx context.Context, id string, at Tag) error
	// Close releases the store.
	Close() error
}

// Change is one write to a shared store, as a Watcher reports it.
type Change struct {
	// Deleted says Record was deleted; Record is then the record as it
	// was last stored (ID, Version, Revision, CreatedAt).
	Deleted bool
	Record  Record
}

// Watcher is a store that several processes share and that reports the
// writes of every one of them.
type Watcher interface {
	// Watch calls sync with every record and the revision of that read,
	// then change with each write after it, in revision order, until ctx
	// ends; it then returns ctx's error. When the watch is lost (the
	// store unreachable for long, history compacted) it reads everything
	// again and calls sync again: a write is never missed, but a caller
	// may see a write it already saw and must compare revisions.
	// progress, if not nil, is called with a revision up to which every
	// write has been reported, when the store can tell it without a write
	// (see Snapshotter). Calls are made from one goroutine, one at a time.
	Watch(ctx context.Context, sync func(recs []Record, rev int64), change func(Change), progress func(rev int64)) error
}

// Snapshotter is a Watcher that tells the revision of a full read, so
// that an instance can bring its memory up to it before a decision that
// spans every record (an apply).
type Snapshotter interface {
	// Snapshot returns every record, sorted by ID, and the revision of
	// the read: no write at or before it is missing from it.
	Snapshot(ctx context.Context) ([]Record, int64, error)
	// RequestProgress asks this process's watches to report their
	// progress soon, although nothing changed: the revision of a
	// snapshot may lie past the last write of a record (another key of
	// the store moved it), which no change would ever report.
	RequestProgress(ctx context.Context) error
}

// RefReader is a RefHolder that lists the refs every instance holds on a
// record, so that a plan (a dry run) can tell which writes would be
// refused.
type RefReader interface {
	// Refs returns the refs held on the record id, by any instance (at
	// most 50).
	Refs(ctx context.Context, id string) ([]Ref, error)
}

// RefHolder is a shared store in which each instance publishes the refs
// it holds, so that Update and Delete fail with an *InUseError (ErrInUse)
// while any instance holds one. A crashed instance's refs go after a
// time-to-live.
type RefHolder interface {
	// HoldRef publishes one attach of ref on the record id; ErrNotFound
	// if there is no such record. Each successful HoldRef is undone by
	// one ReleaseRef.
	HoldRef(ctx context.Context, id, ref string) error
	// ReleaseRef undoes one HoldRef; the ref is withdrawn after the last.
	ReleaseRef(ctx context.Context, id, ref string) error
	// Instance names this instance in the refs it publishes.
	Instance() string
}

// RefLease is a RefHolder whose refs hold only while it reaches the
// store (they live under a lease): cut off for longer than their
// time-to-live, it can no longer promise that no other instance changes
// what it holds, and says so.
type RefLease interface {
	// NotifyRefs registers f (before any HoldRef; one f). f(false) is
	// called, no later than the store would let another instance write
	// past the refs, when they may have lapsed; f(true) when they are
	// published again. Calls are made from one goroutine, in order.
	NotifyRefs(f func(held bool))
}
