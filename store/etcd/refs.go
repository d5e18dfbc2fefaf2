package etcd

import (
	"context"
	"encoding/json"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/connkit/connkit/store"
)

// grant takes a new lease and publishes under it every held ref whose
// record still exists.
func (s *Store) grant(ctx context.Context) error {
	l, err := s.cli.Grant(ctx, int64((s.ttl+time.Second-1)/time.Second))
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lease = l.ID
	refs := make(map[string]*held, len(s.refs))
	for k, h := range s.refs {
		refs[k] = h
	}
	s.mu.Unlock()
	for k, h := range refs {
		s.mu.Lock()
		v := h.value
		s.mu.Unlock()
		// A record deleted while the lease was gone keeps no ref: a
		// record made later with its id is not in use by this one.
		res, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.key(h.id)), ">", 0)).
			Then(clientv3.OpPut(k, v, clientv3.WithLease(l.ID))).Commit()
		if err != nil {
			return err
		}
		s.mu.Lock()
		released := s.refs[k] != h
		if !released && res.Succeeded {
			h.rev = max(h.rev, res.Header.Revision)
		}
		s.mu.Unlock()
		if released && res.Succeeded {
			// Released while it was put again: withdraw what we put.
			s.withdraw(ctx, k, res.Header.Revision)
		}
	}
	s.mu.Lock()
	s.grants++
	s.mu.Unlock()
	return nil
}

// keepAlive keeps the lease alive until Close. A lease lost (etcd away
// for longer than its time-to-live) is replaced, and the refs published
// again, as soon as etcd answers.
func (s *Store) keepAlive() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		lease := s.lease
		s.mu.Unlock()
		ch, err := s.cli.KeepAlive(s.ctx, lease)
		if err == nil {
			for range ch {
			}
		}
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("etcd store: lease lost; refs are published again once etcd answers", "instance", s.instance)
		for {
			ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
			err := s.grant(ctx)
			cancel()
			if err == nil {
				break
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// HoldRef implements store.RefHolder: it puts the ref's key under this
// instance's lease if the record exists.
func (s *Store) HoldRef(ctx context.Context, id, ref string) error {
	k := s.refKey(id, ref)
	v, _ := json.Marshal(store.Ref{Instance: s.instance, Name: ref})
	s.mu.Lock()
	h := s.refs[k]
	if h == nil {
		h = &held{id: id, value: string(v)}
		s.refs[k] = h
	}
	h.count++
	s.mu.Unlock()
	err := s.call(ctx, func(ctx context.Context, _ bool) error {
		// The lease of each attempt: one lost meanwhile is replaced.
		s.mu.Lock()
		lease := s.lease
		s.mu.Unlock()
		res, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.key(id)), ">", 0)).
			Then(clientv3.OpPut(k, string(v), clientv3.WithLease(lease))).Commit()
		if err != nil {
			return err
		}
		if !res.Succeeded {
			return store.ErrNotFound
		}
		s.mu.Lock()
		h.rev = max(h.rev, res.Header.Revision)
		s.mu.Unlock()
		return nil
	})
	if err != nil {
		s.ReleaseRef(context.WithoutCancel(ctx), id, ref)
	}
	return err
}

// ReleaseRef implements store.RefHolder. The key goes after the last
// release, unless a new HoldRef put it again meanwhile.
func (s *Store) ReleaseRef(ctx context.Context, id, ref string) error {
	k := s.refKey(id, ref)
	s.mu.Lock()
	h := s.refs[k]
	if h == nil {
		s.mu.Unlock()
		return nil
	}
	h.count--
	if h.count > 0 {
		s.mu.Unlock()
		return nil
	}
	delete(s.refs, k)
	rev := h.rev
	s.mu.Unlock()
	if rev == 0 {
		return nil // never put
	}
	return s.withdraw(ctx, k, rev)
}

// withdraw deletes the ref key k if it is still at revision rev; if etcd
// cannot be reached, the sweep retries, and until then the record stays
// in use.
func (s *Store) withdraw(ctx context.Context, k string, rev int64) error {
	err := s.unpublish(ctx, k, rev)
	if err != nil {
		s.mu.Lock()
		s.stale[k] = max(s.stale[k], rev)
		s.mu.Unlock()
	}
	return err
}

func (s *Store) unpublish(ctx context.Context, k string, rev int64) error {
	return s.call(ctx, func(ctx context.Context, _ bool) error {
		_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(clientv3.OpDelete(k)).Commit()
		return err
	})
}

// sweep withdraws, once a second, the refs whose release could not reach
// etcd.
func (s *Store) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		stale := make(map[string]int64, len(s.stale))
		for k, rev := range s.stale {
			stale[k] = rev
		}
		s.mu.Unlock()
		for k, rev := range stale {
			if s.unpublish(s.ctx, k, rev) == nil {
				s.mu.Lock()
				if s.stale[k] == rev {
					delete(s.stale, k)
				}
				s.mu.Unlock()
			}
		}
	}
}
