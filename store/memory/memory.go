// Package memory is a Store kept in memory, for tests. It implements
// store.Watcher, so that Managers sharing one Store follow each other's
// writes as they would on a shared store such as etcd.
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
	// rev counts the writes; log holds every change, for Watch; changed
	// is closed at the next write.
	rev     int64
	log     []store.Change
	changed chan struct{}
}

// New returns an empty Store.
func New() *Store {
	return &Store{recs: make(map[string]store.Record), now: time.Now, changed: make(chan struct{})}
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.Watcher     = (*Store)(nil)
	_ store.Snapshotter = (*Store)(nil)
)

// record notes a write of r. s.mu must be held.
func (s *Store) record(r store.Record, deleted bool) {
	s.log = append(s.log, store.Change{Deleted: deleted, Record: clone(r)})
	close(s.changed)
	s.changed = make(chan struct{})
}

// Watch implements store.Watcher. The store never loses a watch: sync is
// called once. Every write is a change, so progress is never needed.
func (s *Store) Watch(ctx context.Context, sync func([]store.Record, int64), change func(store.Change), _ func(int64)) error {
	s.mu.Lock()
	recs := make([]store.Record, 0, len(s.recs))
	for _, r := range s.recs {
		recs = append(recs, clone(r))
	}
	rev, pos := s.rev, len(s.log)
	s.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	sync(recs, rev)
	for {
		s.mu.Lock()
		next, changed := s.log[pos:], s.changed
		pos = len(s.log)
		s.mu.Unlock()
		for _, c := range next {
			c.Record = clone(c.Record)
			change(c)
		}
		if len(next) > 0 {
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func clone(r store.Record) store.Record {
	r.Props = slices.Clone(r.Props)
	return r
}

// List implements store.Store.
func (s *Store) List(ctx context.Context) ([]store.Record, error) {
	recs, _, err := s.Snapshot(ctx)
	return recs, err
}

// Snapshot implements store.Snapshotter.
func (s *Store) Snapshot(ctx context.Context) ([]store.Record, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.Record, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, clone(r))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, s.rev, nil
}

// RequestProgress implements store.Snapshotter: every revision is a
// write of a record, which the watches report.
func (s *Store) RequestProgress(ctx context.Context) error { return ctx.Err() }

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
	s.rev++
	rec.Version, rec.Revision, rec.Incarnation, rec.CreatedAt, rec.UpdatedAt = 1, s.rev, s.rev, now, now
	s.recs[rec.ID] = rec
	s.record(rec, false)
	return clone(rec), nil
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, rec store.Record, at store.Tag) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.recs[rec.ID]
	if !ok {
		return store.Record{}, store.ErrNotFound
	}
	if old.Tag() != at {
		return store.Record{}, store.ErrVersionMismatch
	}
	old.Type, old.Props = rec.Type, slices.Clone(rec.Props)
	old.Version++
	s.rev++
	old.Revision = s.rev
	old.UpdatedAt = s.now().UTC()
	s.recs[rec.ID] = old
	s.record(old, false)
	return clone(old), nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id string, at store.Tag) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.recs[id]
	if !ok {
		return store.ErrNotFound
	}
	if old.Tag() != at {
		return store.ErrVersionMismatch
	}
	delete(s.recs, id)
	s.rev++
	s.record(old, true)
	return nil
}

// Close implements store.Store. The records stay readable.
func (s *Store) Close() error { return nil }
