// Package store defines where connection specs are kept.
//
// Every record carries a version: Create fails if the id exists, Update and
// Delete take the version the caller last read and fail if the record has
// moved on. A write is durable when the call returns without error.
//
// Implementations: store/memory (tests) and store/sqlite (the embedded
// default). store/storetest is the conformance suite both run.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Errors a Store returns; check with errors.Is.
var (
	ErrNotFound        = errors.New("store: record not found")
	ErrExists          = errors.New("store: record already exists")
	ErrVersionMismatch = errors.New("store: version mismatch")
)

// Record is one stored connection.
type Record struct {
	ID   string
	Type string
	// Props is the JSON object of props as the user gave them, secrets
	// included.
	Props json.RawMessage
	// Version is 1 after Create and grows by one with each Update.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
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
