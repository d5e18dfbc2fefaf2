package etcd

import (
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/connkit/connkit/store"
)

// Watch implements store.Watcher. A watch that etcd cancels (history
// compacted, a member without a leader) is followed by a full read and a
// new watch from its revision, as is a watch that leaves a progress
// request unanswered for a second. A progress notice of etcd's (asked for
// by RequestProgress) is reported to progress.
func (s *Store) Watch(ctx context.Context, sync func([]store.Record, int64), change func(store.Change), progress func(int64)) error {
	wait := 100 * time.Millisecond
	for {
		recs, rev, err := s.list(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("etcd store: cannot read the connections; trying again", "err", err, "in", wait)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		wait = 100 * time.Millisecond
		sync(recs, rev)
		wctx, cancel := context.WithCancel(watchStream(ctx))
		ch := s.cli.Watch(wctx, s.prefix+"c/", clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
		tick := time.NewTicker(stall / 4)
	events:
		for {
			var res clientv3.WatchResponse
			var ok bool
			select {
			case res, ok = <-ch:
			case <-tick.C:
				if a := s.asked.Load(); a != 0 && time.Since(time.Unix(0, a)) > stall {
					// The member the watch is on hangs (paused, or cut
					// off from its peers): a new watch finds another.
					s.asked.Store(0)
					s.log.Warn("etcd store: the watch did not answer a progress request; watching again", "after", stall)
					break events
				}
				continue
			}
			if !ok {
				break
			}
			s.asked.Store(0)
			s.saw(res.Header)
			if res.Err() != nil {
				s.log.Warn("etcd store: watch lost; reading everything again", "err", res.Err())
				break
			}
			if res.IsProgressNotify() {
				if progress != nil {
					progress(res.Header.Revision)
				}
				continue
			}
			for _, ev := range res.Events {
				var c store.Change
				kv := ev.Kv
				if ev.Type == mvccpb.DELETE {
					if ev.PrevKv == nil {
						break events // compacted away: a full read settles it
					}
					c.Deleted = true
					kv = ev.PrevKv
				}
				r, ok := s.decode(kv)
				if !ok {
					continue
				}
				c.Record = r
				change(c)
			}
		}
		tick.Stop()
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// watchStream marks a context for the watch's gRPC stream: etcd's client
// shares one stream per set of metadata, and RequestProgress reaches the
// watches of the stream its context names.
func watchStream(ctx context.Context) context.Context { return clientv3.WithRequireLeader(ctx) }

// RequestProgress implements store.Snapshotter: etcd answers on the
// watch's stream with the revision up to which it has sent every event.
// A watch that leaves a request unanswered for longer than stall is made
// again.
func (s *Store) RequestProgress(ctx context.Context) error {
	s.asked.CompareAndSwap(0, time.Now().UnixNano())
	// The request waits on the stream's sender, which a hung member can
	// hold: never long.
	ctx, cancel := context.WithTimeout(ctx, stall/4)
	defer cancel()
	return s.cli.RequestProgress(watchStream(ctx))
}

// stall is how long a watch may leave a progress request unanswered
// before it is made again.
const stall = time.Second
