package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"
)

// A write waits for its turn in the committer, which puts every write
// waiting at that moment (up to MaxBatch) in one transaction, each under
// a savepoint of its own, and commits them with one fsync. A write that
// fails rolls back to its savepoint and fails alone; a commit that fails
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

// run commits one batch.
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
	tx, err := s.db.BeginTx(context.Background(), nil)
	if err == nil {
		for i, o := range live {
			if len(live) == 1 {
				errs[i] = o.apply(tx)
				continue
			}
			if _, err = tx.Exec(`SAVEPOINT w`); err != nil {
				break
			}
			if errs[i] = o.apply(tx); errs[i] != nil {
				if _, err = tx.Exec(`ROLLBACK TO w`); err != nil {
					break
				}
			}
			if _, err = tx.Exec(`RELEASE w`); err != nil {
				break
			}
		}
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
	}
	for i, o := range live {
		switch {
		case err != nil:
			o.done <- err // nothing of the batch is durable
		default:
			o.done <- errs[i]
		}
	}
}
