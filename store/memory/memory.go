// Package memory is a Store kept in memory, for tests.
package memory

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/connkit/connkit/store"
)

// Store is an in-memory store.Store. The zero value is not ready; use New.
type Store struct {
	mu   sync.Mutex
	recs map[string]store.Record
	now  func() time.Time
}

// New returns an empty Store.
func New() *Store {
	return &Store{recs: make(map[string]store.Record), now: time.Now}
}

var _ store.Store = (*Store)(nil)

func clone(r store.Record) store.Record {
	r.Props = slices.Clone(r.Props)
	return r
}

// List implements store.Store.
func (s *Store) List(ctx context.Context) ([]store.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Record, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, clone(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	if !ok {
		return store.Record{}, store.ErrNotFound
	}
	return clone(r), nil
}

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, rec store.Record) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.recs[rec.ID]; ok {
		return store.Record{}, store.ErrExists
	}
	now := s.now().UTC()
	rec = clone(rec)
	rec.Version, rec.CreatedAt, rec.UpdatedAt = 1, now, now
	s.recs[rec.ID] = rec
	return clone(rec), nil
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, rec store.Record, version int64) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.recs[rec.ID]
	if !ok {
		return store.Record{}, store.ErrNotFound
	}
	if old.Version != version {
		return store.Record{}, store.ErrVersionMismatch
	}
	old.Type, old.Props = rec.Type, slices.Clone(rec.Props)
	old.Version++
	old.UpdatedAt = s.now().UTC()
	s.recs[rec.ID] = old
	return clone(old), nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id string, version int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.recs[id]
	if !ok {
		return store.ErrNotFound
	}
	if old.Version != version {
		return store.ErrVersionMismatch
	}
	delete(s.recs, id)
	return nil
}

// Close implements store.Store. The records stay readable.
func (s *Store) Close() error { return nil }
