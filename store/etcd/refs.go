package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/connkit/connkit/store"
)

// grant takes a new lease and publishes under it every held ref whose
// record still exists.
func (s *Store) grant(ctx context.Context) error {
	sent := time.Now()
	l, err := s.cli.Grant(ctx, int64((s.ttl+time.Second-1)/time.Second))
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.lease, s.until = l.ID, sent.Add(time.Duration(l.TTL)*time.Second)
	refs := make(map[string]*held, len(s.refs))
	for k, h := range s.refs {
		refs[k] = h
	}
	s.mu.Unlock()
	for k, h := range refs {
		s.mu.Lock()
		v, inc := h.value, h.inc
		s.mu.Unlock()
		// A record deleted while the lease was gone keeps no ref: a
		// record made later with its id (another incarnation) is not in
		// use by this one.
		guard := clientv3.Compare(clientv3.CreateRevision(s.key(h.id)), ">", 0)
		if inc != 0 {
			guard = clientv3.Compare(clientv3.CreateRevision(s.key(h.id)), "=", inc)
		}
		res, err := s.cli.Txn(ctx).If(guard).
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

// keepAlive keeps the lease alive until Close. It renews the lease
// itself, a third of its time-to-live apart, so that it knows until when
// the refs hold for sure: the time a renewal that etcd granted was sent,
// plus the time-to-live (etcd counts from when it got it). Past that
// without a renewal, the refs may have lapsed, and the Manager is told
// before any other instance can write past them. A lease lost is
// replaced, and the refs published again, as soon as etcd answers.
func (s *Store) keepAlive() {
	defer s.wg.Done()
	every := s.ttl / 3
	held := true
	for {
		s.mu.Lock()
		lease, until := s.lease, s.until
		s.mu.Unlock()
		// A call never runs past the moment the refs may lapse, so that
		// the lapse is told on time.
		wait := every
		if left := time.Until(until); held && left < wait {
			wait = max(left, 0)
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
		if held && !time.Now().Before(until) {
			held = false
			s.log.Warn("etcd store: this instance's refs may have lapsed: etcd did not renew their lease in time; other instances may now change the connections used here", "instance", s.instance, "ttl", s.ttl)
			s.notifyRefs(false)
		}
		timeout := every
		if left := time.Until(until); held && left > 0 && left < timeout {
			timeout = left
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(s.ctx, timeout)
		res, err := s.cli.KeepAliveOnce(ctx, lease)
		cancel()
		if s.ctx.Err() != nil {
			return
		}
		if err == nil && res.TTL > 0 {
			s.mu.Lock()
			if s.lease == lease {
				s.until = sent.Add(time.Duration(res.TTL) * time.Second)
			}
			s.mu.Unlock()
			if !held {
				// The lease outlived the silence: the refs never went.
				held = true
				s.log.Info("etcd store: this instance's refs hold again", "instance", s.instance)
				s.notifyRefs(true)
			}
			continue
		}
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			continue // no answer: try again
		}
		if held {
			held = false
			s.log.Warn("etcd store: this instance's lease is gone, and its refs with it; they are published again", "instance", s.instance)
			s.notifyRefs(false)
		}
		ctx, cancel = context.WithTimeout(s.ctx, s.timeout)
		err = s.grant(ctx)
		cancel()
		if err == nil {
			held = true
			s.log.Info("etcd store: this instance's refs are published again under a new lease", "instance", s.instance)
			s.notifyRefs(true)
		}
	}
}

// NotifyRefs implements store.RefLease.
func (s *Store) NotifyRefs(f func(held bool)) {
	s.mu.Lock()
	s.onRefs = f
	s.mu.Unlock()
}

func (s *Store) notifyRefs(held bool) {
	s.mu.Lock()
	f := s.onRefs
	s.mu.Unlock()
	if f != nil {
		f(held)
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
	err := s.call(ctx, func(ctx context.Context) error {
		// The lease of each attempt: one lost meanwhile is replaced.
		s.mu.Lock()
		lease := s.lease
		s.mu.Unlock()
		res, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.key(id)), ">", 0)).
			Then(clientv3.OpPut(k, string(v), clientv3.WithLease(lease)), clientv3.OpGet(s.key(id), clientv3.WithKeysOnly())).Commit()
		if err != nil {
			return err
		}
		if !res.Succeeded {
			return store.ErrNotFound
		}
		s.mu.Lock()
		h.rev = max(h.rev, res.Header.Revision)
		if kvs := res.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 && h.inc == 0 {
			h.inc = kvs[0].CreateRevision
		}
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
	return s.call(ctx, func(ctx context.Context) error {
		_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", rev)).Then(clientv3.OpDelete(k)).Commit()
		return err
	})
}

// sweep withdraws, once a second, the refs whose release could not reach
// etcd, and deletes the markers of the writes that have answered.
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
		s.clearMarkers(s.ctx)
	}
}

// clearMarkers deletes the markers of the writes that have answered, in
// transactions of at most 128 (etcd's default limit of operations).
func (s *Store) clearMarkers(ctx context.Context) {
	s.mu.Lock()
	markers := make([]string, 0, len(s.markers))
	for k := range s.markers {
		markers = append(markers, k)
	}
	s.mu.Unlock()
	for batch := range slices.Chunk(markers, 128) {
		ops := make([]clientv3.Op, len(batch))
		for i, k := range batch {
			ops[i] = clientv3.OpDelete(k)
		}
		tctx, cancel := context.WithTimeout(ctx, s.timeout)
		_, err := s.cli.Txn(tctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return
		}
		s.mu.Lock()
		for _, k := range batch {
			delete(s.markers, k)
		}
		s.mu.Unlock()
	}
}
