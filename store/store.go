// Package store defines where connection specs are kept.
//
// Every record carries a version: Create fails if the id exists, Update and
// Delete take the version the caller last read and fail if the record has
// moved on. A write is durable when the call returns without error.
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

// Store keeps records. Implementations are safe for concurrent use.
type Store interface {
	// List returns every record sorted by ID.
	List(ctx context.Context) ([]Record, error)
	// Get returns the record id, or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// Create stores rec with Version 1 and both timestamps set to now, and
	// returns what it stored; ErrExists if rec.ID is taken.
	Create(ctx context.Context, rec Record) (Record, error)
	// Update replaces the Type and Props of the record rec.ID if its
	// version is version, increments the version, sets UpdatedAt and
	// returns what it stored; ErrNotFound or ErrVersionMismatch otherwise.
	Update(ctx context.Context, rec Record, version int64) (Record, error)
	// Delete removes the record id if its version is version;
	// ErrNotFound or ErrVersionMismatch otherwise.
	Delete(ctx context.Context, id string, version int64) error
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
	// may see a write it already saw and must compare revisions. Calls
	// are made from one goroutine, one at a time.
	Watch(ctx context.Context, sync func(recs []Record, rev int64), change func(Change)) error
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
