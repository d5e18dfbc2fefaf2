package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"

	"github.com/connkit/connkit/store"
)

// A write waits for its turn in the committer, which puts every write
// waiting at that moment (up to MaxBatch) in one transaction and commits
// them with one fsync. A write that fails fails alone; a commit that fails
// fails them all. Each caller is answered only after its write is
// durable.

// op is one write in the queue.
type op struct {
	apply func(tx *sql.Tx) error
	done  chan error
	state atomic.Int32 // pending, taken by the committer, or abandoned by its caller
}

const (
	pending int32 = iota
	taken
	abandoned
)

var errClosed = errors.New("sqlite store: closed")

// write queues apply and waits for the end of its transaction. A caller
// whose ctx ends before the committer took its write gets ctx's error and
// the write never happens; once taken, it is waited for, so that the
// answer is always the truth.
func (s *Store) write(ctx context.Context, apply func(tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err // a select would pick at random between it and a ready committer
	}
	o := &op{apply: apply, done: make(chan error, 1)}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return errClosed
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		if o.state.CompareAndSwap(pending, abandoned) {
			return ctx.Err()
		}
		return <-o.done
	}
}

// commit runs the committer until quit is closed; then the writes still
// queued fail.
func (s *Store) commit() {
	defer close(s.stopped)
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.quit:
			for {
				select {
				case o := <-s.ops:
					o.done <- errClosed
				default:
					return
				}
			}
		}
		batch := []*op{first}
	more:
		for len(batch) < s.maxBatch {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break more
			}
		}
		s.run(batch)
	}
}

// run commits one batch. A write that finds its id taken, missing or at
// another version changes nothing and says so, with no error of SQLite's:
// the batch goes on without a savepoint. A write that fails in SQLite
// spoils the transaction: it is rolled back, and each write runs again in
// a transaction of its own, so that the failing one fails alone.
func (s *Store) run(batch []*op) {
	live := batch[:0]
	for _, o := range batch {
		if o.state.CompareAndSwap(pending, taken) {
			live = append(live, o)
		}
	}
	if len(live) == 0 {
		return
	}
	s.batches.Add(1)
	errs := make([]error, len(live))
	err := s.tx(func(tx *sql.Tx) error {
		for i, o := range live {
			if errs[i] = o.apply(tx); errs[i] != nil && !benign(errs[i]) {
				return errs[i]
			}
		}
		return nil
	})
	if err != nil && len(live) > 1 {
		for i, o := range live {
			var res error
			errs[i] = s.tx(func(tx *sql.Tx) error {
				if res = o.apply(tx); benign(res) {
					return nil
				}
				return res
			})
			if errs[i] == nil {
				errs[i] = res
			}
		}
		err = nil
	}
	for i, o := range live {
		if err != nil {
			o.done <- err // nothing of the batch is durable
		} else {
			o.done <- errs[i]
		}
	}
}

// tx runs f in a transaction, committed (with its fsync) if f returns nil.
func (s *Store) tx(f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// benign is the answer of a write that changed nothing by design.
func benign(err error) bool {
	return errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrVersionMismatch)
}
