package connection

import (
	"context"

	"github.com/connkit/connkit/store"
)

// follow applies to this Manager the writes every instance makes to a
// shared store, until ctx ends.
func (m *Manager) follow(ctx context.Context, w store.Watcher) {
	defer m.followed.Done()
	w.Watch(ctx, func(recs []store.Record, rev int64) {
		m.resync(recs, rev, true)
		m.advance(rev)
	}, func(c store.Change) {
		m.apply(c, true)
		m.advance(c.Record.Revision)
	}, m.advance)
}

// freshAll waits until this instance has seen what a shared store holds
// now, before a decision that spans every connection (an apply).
func (m *Manager) freshAll(ctx context.Context) error {
	if !m.shared {
		return nil
	}
	sn, ok := m.store.(store.Snapshotter)
	if !ok {
		return nil
	}
	ctx, cancel := m.writing(ctx)
	defer cancel()
	var recs []store.Record
	var rev int64
	err := m.timed("list", func() (err error) {
		recs, rev, err = sn.Snapshot(ctx)
		return err
	})
	if err != nil {
		return unreadable("", stored(ctx, err))
	}
	// Memory must hold every record of the read, or something newer, and
	// nothing the read lacks unless it was written after it. Whatever
	// differs is settled by a write the watch has yet to apply.
	in := make(map[string]bool, len(recs))
	for _, r := range recs {
		in[r.ID] = true
	}
	return m.caughtUp(ctx, "", func() bool {
		for _, r := range recs {
			if !m.covers(r) {
				return false
			}
		}
		for id, e := range m.conns {
			if e.stored && !in[id] && e.rec.Revision <= rev {
				return false
			}
		}
		return true
	}, m.askProgress())
}

// resync makes the connections match a full read of the store at rev:
// each record is applied, and a connection the read lacks is gone,
// unless it was stored after the read. The watch's own (watched) has
// passed rev: the tombs up to it are done with.
func (m *Manager) resync(recs []store.Record, rev int64, watched bool) {
	seen := make(map[string]bool, len(recs))
	for _, r := range recs {
		seen[r.ID] = true
		m.apply(store.Change{Record: r}, watched)
	}
	m.mu.Lock()
	var gone []store.Record
	for id, e := range m.conns {
		if e.stored && !seen[id] && e.rec.Revision <= rev {
			gone = append(gone, e.rec)
		}
	}
	for id, t := range m.tombs {
		if watched && t <= rev {
			delete(m.tombs, id)
		}
	}
	if watched && len(m.gone) > 10000 {
		// Only a write in flight that read a record before its delete
		// needs its entry; past this many, such a write may wait out its
		// timeout rather than memory grow with every id ever deleted.
		clear(m.gone)
	}
	m.mu.Unlock()
	for _, r := range gone {
		m.apply(store.Change{Deleted: true, Record: r}, watched)
	}
}

// apply makes one change of the store live here, unless this Manager
// already has it or something newer: the store's revisions order them.
// watched says the change comes from the watch, in revision order, which
// is done with a tomb once it reports the delete; a change read by a
// write (fresh) leaves the tomb for the watch.
func (m *Manager) apply(c store.Change, watched bool) {
	r := c.Record
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return
		}
		if watched && c.Deleted {
			m.gone[r.ID] = max(m.gone[r.ID], r.Revision)
		}
		if t, ok := m.tombs[r.ID]; ok && r.Revision <= t {
			// Deleted here after that write.
			if watched && c.Deleted && r.Revision == t {
				delete(m.tombs, r.ID)
			}
			m.mu.Unlock()
			return
		}
		e := m.conns[r.ID]
		if e != nil && e.busy != nil {
			// A write of this Manager is in flight: it settles first.
			ch := e.busy
			m.mu.Unlock()
			<-ch
			continue
		}
		// A delete carries the revision of the record it removed: the one
		// held here, or a later one.
		if e != nil && (r.Revision < e.rec.Revision || !c.Deleted && r.Revision == e.rec.Revision) {
			m.mu.Unlock()
			return
		}
		if c.Deleted {
			if e == nil {
				m.mu.Unlock()
				return
			}
			m.remove(r.ID)
			m.changed(EventDeleted, e, true)
			l, refs := e.live, e.refNames()
			// Attaches here can only remain if this instance's lease was
			// lost: they are revoked, and their refs withdrawn, so that
			// none is published again on a later connection of the id.
			dropped := m.revoke(e, "deleted")
			m.mu.Unlock()
			for _, h := range dropped {
				h.stop()
				m.releaseRef(r.ID, h.ref)
			}
			if len(refs) > 0 {
				m.log.Warn("connection deleted by another instance while attached here", "connection", r.ID, "refs", refs)
			}
			if l != nil {
				l.stop()
			}
			m.log.Info("connection deleted by another instance", "connection", r.ID, "type", r.Type)
			return
		}
		m.mu.Unlock()

		// The new state is made without the lock: opening dials nothing.
		ne := &entry{rec: r, refs: map[string]*refState{}, stored: true}
		props, err := m.load(r)
		if err := m.prepare(ne, props, err); err != nil {
			m.log.Error("connection from another instance cannot run", "connection", r.ID, "type", r.Type, "err", ne.broken.Err)
		}
		m.mu.Lock()
		cur := m.conns[r.ID]
		if m.closed || cur != e || (cur != nil && (cur.busy != nil || r.Revision <= cur.rec.Revision)) {
			m.mu.Unlock()
			if ne.live != nil {
				ne.live.stop()
			}
			if m.closed {
				return
			}
			continue
		}
		if e == nil {
			m.put(r.ID, ne)
			m.changed(EventCreated, ne, true)
			if ne.live != nil {
				ne.live.start(&m.wg)
			}
			m.mu.Unlock()
			m.log.Info("connection created by another instance", "connection", r.ID, "type", r.Type, "version", r.Version)
			return
		}
		old := e.live
		if old != nil {
			old.mute()
		}
		revoked := m.revoke(e, "updated")
		e.rec, e.schema, e.live, e.broken, e.identity = ne.rec, ne.schema, ne.live, ne.broken, ne.identity
		e.setProps(ne.props)
		m.changed(EventUpdated, e, true)
		e.busy = make(chan struct{})
		m.mu.Unlock()
		for _, h := range revoked {
			h.stop()
			m.releaseRef(r.ID, h.ref)
		}
		if len(revoked) > 0 {
			m.log.Warn("connection updated by another instance while attached here: its attaches are revoked", "connection", r.ID, "attaches", len(revoked))
		}
		// The old link goes before the new one dials.
		if old != nil {
			old.stop()
		}
		m.mu.Lock()
		if !m.closed && e.live != nil {
			e.live.start(&m.wg)
		}
		settle(e)
		closed := m.closed
		m.mu.Unlock()
		if closed && e.live != nil {
			e.live.stop()
		}
		m.log.Info("connection updated by another instance", "connection", r.ID, "type", r.Type, "version", r.Version)
		return
	}
}

// holdRef publishes one attach of ref in a store that several instances
// share, so that none of them changes the connection meanwhile.
func (m *Manager) holdRef(ctx context.Context, id, ref string) error {
	rh, ok := m.store.(store.RefHolder)
	if !ok {
		return nil
	}
	if err := guard(func() error { return rh.HoldRef(ctx, id, ref) }); err != nil {
		return storeError(id, "attach", err)
	}
	return nil
}

// releaseRef undoes one holdRef.
func (m *Manager) releaseRef(id, ref string) {
	if rh, ok := m.store.(store.RefHolder); ok {
		if err := guard(func() error { return rh.ReleaseRef(context.Background(), id, ref) }); err != nil {
			m.log.Warn("ref not yet withdrawn from the store; it is retried", "connection", id, "ref", ref, "err", err)
		}
	}
}
