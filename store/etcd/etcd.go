// Package etcd is a store.Store on etcd, for several instances that
// share one set of connections.
//
// Under its prefix a Store keeps each record at c/ID (its etcd version is
// the record's Version) and each ref an instance holds at
// r/ID/INSTANCE/TOKEN/REF, under the instance's lease (TOKEN is random
// per process, so that two processes given one instance name never
// withdraw each other's refs). Create, Update and
// Delete are transactions: a create succeeds only if the key is absent,
// an update or delete only at the version the caller read and while no
// instance holds a ref, so two instances racing on one id cannot both
// win and a connection in use anywhere is never changed.
//
// A Store is a store.Watcher (Managers on it follow every instance's
// writes) and a store.RefHolder (refs are published with a time-to-live:
// a crashed instance's refs go with its lease).
package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/connkit/connkit/store"
)

// Options configure Open. The zero value is usable.
type Options struct {
	// Prefix is where the Store's keys live; default "/connkit/".
	Prefix string
	// Instance names this process in the refs it publishes; default the
	// host name and a random suffix.
	Instance string
	// Timeout bounds each call to etcd; past it a write fails with
	// store.ErrUnavailable. Default 5 s.
	Timeout time.Duration
	// RefTTL is how long a crashed instance's refs outlive it; default
	// 10 s.
	RefTTL time.Duration
	// Logger receives the store's own warnings; default slog.Default().
	Logger *slog.Logger
	// DialOptions are added to the gRPC client's (interceptors, for
	// tracing, or for tests that delay a request).
	DialOptions []grpc.DialOption
}

// Store is a store.Store on etcd. Use Open.
type Store struct {
	cli      *clientv3.Client
	prefix   string
	instance string
	// token tells this process's refs from those of another process
	// given the same instance name, so that neither withdraws the
	// other's.
	token   string
	timeout time.Duration
	ttl     time.Duration
	log     *slog.Logger
	// rev is the greatest revision any answer of etcd's has carried.
	rev atomic.Int64
	// asked is when the oldest progress request the watch has not yet
	// answered was made (unix ns), or 0.
	asked  atomic.Int64
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	lease clientv3.LeaseID
	// until is when the refs may lapse, unless the lease is renewed.
	until  time.Time
	onRefs func(held bool)
	grants int              // leases granted and refs published under them
	refs   map[string]*held // by key
	stale  map[string]int64 // released refs not yet withdrawn: key to revision
	// markers are the markers of writes that have answered, for the
	// sweep to delete.
	markers map[string]bool
	// ignored holds the keys under c/ that are no record of this Store,
	// so that each is logged once.
	ignored map[string]bool
}

// held is one ref this instance publishes.
type held struct {
	id    string // of the record
	count int
	rev   int64 // the mod revision of its last put
	inc   int64 // the incarnation of the record it was put on
	value string
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.Watcher     = (*Store)(nil)
	_ store.RefHolder   = (*Store)(nil)
	_ store.RefReader   = (*Store)(nil)
	_ store.RefLease    = (*Store)(nil)
	_ store.Snapshotter = (*Store)(nil)
)

// Open connects to the etcd members at endpoints (host:port) and returns
// a Store under opts.Prefix. It fails if no member answers within the
// timeout.
func Open(ctx context.Context, endpoints []string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	s := &Store{prefix: opts.Prefix, instance: opts.Instance, timeout: opts.Timeout, ttl: opts.RefTTL, log: opts.Logger, refs: map[string]*held{}, stale: map[string]int64{}, markers: map[string]bool{}, ignored: map[string]bool{}}
	if s.prefix == "" {
		s.prefix = "/connkit/"
	}
	if !strings.HasSuffix(s.prefix, "/") {
		s.prefix += "/"
	}
	if s.instance == "" {
		host, _ := os.Hostname()
		b := make([]byte, 3)
		rand.Read(b)
		s.instance = host + "-" + hex.EncodeToString(b)
	}
	if strings.ContainsAny(s.instance, "/") {
		return nil, fmt.Errorf("etcd store: instance %q: a name without /", s.instance)
	}
	tok := make([]byte, 6)
	rand.Read(tok)
	s.token = hex.EncodeToString(tok)
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	if s.ttl <= 0 {
		s.ttl = 10 * time.Second
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          s.timeout,
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
		Context:              context.Background(),
		// gRPC's own backoff grows to 2 minutes: after an outage of 10 s
		// the first write waited 7 s for the next dial. A member that is
		// back is found within half a second.
		DialOptions: append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})}, opts.DialOptions...),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd store: %w", err)
	}
	s.cli = cli
	s.ctx, s.cancel = context.WithCancel(context.Background())
	octx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.grant(octx); err != nil {
		cli.Close()
		s.cancel()
		return nil, fmt.Errorf("etcd store: no etcd member at %s answered: %w", strings.Join(endpoints, ","), err)
	}
	if err := s.claim(octx); err != nil {
		cli.Close()
		s.cancel()
		return nil, err
	}
	s.wg.Add(2)
	go s.keepAlive()
	go s.sweep()
	return s, nil
}

// marker is the key, under a Store's prefix, that says a Store lives
// there; its value is markerValue. No record or ref key ends so: a
// record's id has no dot, and a ref's key is checked by value.
const (
	marker      = "connkit.store"
	markerValue = "connkit store; records under c/, refs under r/"
)

// claim refuses a prefix nested inside another Store's, or holding one:
// the keys of one would lie among the other's refs (a Store at /p/r/x
// holds its records under what /p reads as the refs of x), and writes
// would be refused for refs that are none. Otherwise it marks the prefix.
func (s *Store) claim(ctx context.Context) error {
	// The mark first, then the look: of two stores that start at once
	// with nested prefixes, the later look of the two sees the other's
	// mark, so that they never both run.
	own := s.prefix + marker
	res, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(own), "=", 0)).Then(clientv3.OpPut(own, markerValue)).Commit()
	if err != nil {
		return fmt.Errorf("etcd store: %w", err)
	}
	s.saw(res.Header)
	if err := s.nested(ctx); err != nil {
		if res.Succeeded {
			s.cli.Delete(ctx, own) // a mark of a store that never ran
		}
		return err
	}
	return nil
}

// nested refuses a prefix inside another store's, or holding one.
func (s *Store) nested(ctx context.Context) error {
	for a := parentPrefix(s.prefix); a != ""; a = parentPrefix(a) {
		res, err := s.cli.Get(ctx, a+marker)
		if err != nil {
			return fmt.Errorf("etcd store: %w", err)
		}
		if len(res.Kvs) > 0 && string(res.Kvs[0].Value) == markerValue {
			return fmt.Errorf("etcd store: prefix %s lies inside the connections of another store, at %s: give a prefix outside it (or, if no store runs there any more, delete the key %s)", truncate(s.prefix), truncate(a), truncate(a+marker))
		}
	}
	res, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("etcd store: %w", err)
	}
	for _, kv := range res.Kvs {
		k := string(kv.Key)
		if k == s.prefix+marker || !strings.HasSuffix(k, "/"+marker) {
			continue
		}
		v, err := s.cli.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("etcd store: %w", err)
		}
		if len(v.Kvs) > 0 && string(v.Kvs[0].Value) == markerValue {
			return fmt.Errorf("etcd store: prefix %s holds the connections of another store, at %s: give prefixes that do not nest (or, if no store runs there any more, delete the key %s)", truncate(s.prefix), truncate(strings.TrimSuffix(k, marker)), truncate(k))
		}
	}
	return nil
}

// parentPrefix is the prefix one level up of p ("/a/b/" -> "/a/"), or "".
func parentPrefix(p string) string {
	t := strings.TrimSuffix(p, "/")
	i := strings.LastIndex(t, "/")
	if i < 0 {
		return ""
	}
	return t[:i+1]
}

// Instance implements store.RefHolder.
func (s *Store) Instance() string { return s.instance }

// Client is the etcd client, for tests and tools.
func (s *Store) Client() *clientv3.Client { return s.cli }

func (s *Store) key(id string) string    { return s.prefix + "c/" + id }
func (s *Store) tomb(id string) string   { return s.prefix + "t/" + id }
func (s *Store) refsOf(id string) string { return s.prefix + "r/" + id + "/" }
func (s *Store) refKey(id, ref string) string {
	return s.refsOf(id) + s.instance + "/" + s.token + "/" + url.PathEscape(ref)
}

// value is a record as stored; its version and revision are etcd's.
type value struct {
	Type      string          `json:"type"`
	Props     json.RawMessage `json:"props"`
	CreatedAt time.Time       `json:"createdAt"`
	UpdatedAt time.Time       `json:"updatedAt"`
}

// decode reads a record from its key and value. A key whose id is not
// valid is no record of this Store (a Store under a nested prefix has
// its keys below this one's): ok is false, and it is logged once. A value
// that is not a record is one, damaged: its Err says so.
func (s *Store) decode(kv *mvccpb.KeyValue) (rec store.Record, ok bool) {
	key, val := kv.Key, kv.Value
	id := strings.TrimPrefix(string(key), s.prefix+"c/")
	if !store.ValidID(id) {
		s.mu.Lock()
		first := !s.ignored[string(key)]
		if first && len(s.ignored) < 1000 {
			s.ignored[string(key)] = true
		}
		s.mu.Unlock()
		if first {
			s.log.Warn("etcd store: ignoring a key that is no connection of this prefix (another application's, or a store under a nested prefix)", "key", truncate(string(key)))
		}
		return store.Record{}, false
	}
	var v value
	if err := json.Unmarshal(val, &v); err != nil {
		return store.Record{ID: id, Version: kv.Version, Incarnation: kv.CreateRevision, Revision: kv.ModRevision, Err: fmt.Errorf("etcd store: the value of key %s is not a record: %v", truncate(string(key)), err)}, true
	}
	return store.Record{ID: id, Type: v.Type, Props: v.Props,
		Version: kv.Version, Incarnation: kv.CreateRevision, Revision: kv.ModRevision, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}, true
}

// truncate bounds a key in a message.
func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// call runs fn within the Store's timeout, in attempts of at most a
// second (attempt) or half of it: a member that dies with a request in
// flight (its leader gone) makes etcd answer "request timed out" only
// after seconds, and the next attempt reaches the new leader. A write
// tells an earlier attempt of its own by its marker. A timeout of the
// Store's own (not the caller's) is store.ErrUnavailable.
func (s *Store) call(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(s.timeout)
	var err error
	for {
		end := time.Now().Add(min(s.timeout/2, attempt))
		if end.After(deadline) {
			end = deadline
		}
		actx, cancel := context.WithDeadline(ctx, end)
		err = fn(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrVersionMismatch) || errors.Is(err, store.ErrInUse) {
			return err
		}
		if time.Until(deadline) < 100*time.Millisecond {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%w: etcd did not answer in %v: %v", store.ErrUnavailable, s.timeout, err)
}

// List implements store.Store.
func (s *Store) List(ctx context.Context) ([]store.Record, error) {
	recs, _, err := s.list(ctx)
	return recs, err
}

// Snapshot implements store.Snapshotter.
func (s *Store) Snapshot(ctx context.Context) ([]store.Record, int64, error) { return s.list(ctx) }

func (s *Store) list(ctx context.Context) (recs []store.Record, rev int64, err error) {
	err = s.call(ctx, func(ctx context.Context) error {
		res, err := s.cli.Get(ctx, s.prefix+"c/", clientv3.WithPrefix())
		if err != nil {
			return err
		}
		rev = res.Header.Revision
		s.saw(res.Header)
		recs = make([]store.Record, 0, len(res.Kvs))
		for _, kv := range res.Kvs {
			if r, ok := s.decode(kv); ok {
				recs = append(recs, r)
			}
		}
		return nil
	})
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	return recs, rev, err
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (rec store.Record, err error) {
	err = s.call(ctx, func(ctx context.Context) error {
		res, err := s.cli.Get(ctx, s.key(id))
		if err != nil {
			return err
		}
		s.saw(res.Header)
		if len(res.Kvs) == 0 {
			return store.ErrNotFound
		}
		kv := res.Kvs[0]
		var ok bool
		if rec, ok = s.decode(kv); !ok {
			return store.ErrNotFound
		}
		return nil
	})
	return rec, err
}

// Every write carries a marker of its own (w/WRITE, random per call):
// each attempt's transaction requires it absent and puts it, so that of
// the attempts of one write at most one is applied, and a later attempt
// tells from the marker that an earlier one was. The sweep deletes the
// markers once the write has answered. An attempt applied after that
// changes nothing, as each write's guard names a state its key can be in
// only once, which has passed by then.

// marker returns the key of a new write's marker.
func (s *Store) marker() string {
	b := make([]byte, 12)
	rand.Read(b)
	return s.prefix + "w/" + hex.EncodeToString(b)
}

// done hands a write's marker to the sweep.
func (s *Store) done(w string, sent bool) {
	if sent {
		s.mu.Lock()
		s.markers[w] = true
		s.mu.Unlock()
	}
}

// landed reads w from a refused transaction's Else: the revision at
// which an earlier attempt of the write was applied, or 0.
func landed(r *etcdserverpb.ResponseOp) int64 {
	if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 && len(kvs[0].Value) == 0 {
		return kvs[0].CreateRevision
	}
	return 0
}

// fence makes sure that no earlier attempt of the write whose marker is
// w can be applied from now on, before a refusal decided without a
// transaction is answered: it returns the revision at which one was
// applied, or 0 if none was (nor ever will be).
func (s *Store) fence(ctx context.Context, w string) (int64, error) {
	res, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(w), "=", 0)).
		Then(clientv3.OpPut(w, "fenced")).Else(clientv3.OpGet(w)).Commit()
	if err != nil {
		return 0, err
	}
	if res.Succeeded {
		return 0, nil
	}
	return landed(res.Responses[0]), nil
}

// Create implements store.Store. Its guard can never come true again
// once it is false: the key absent, and its tomb (t/ID, put by every
// delete) no later than the last revision this Store had seen when the
// attempt was sent. An attempt that etcd applies late, after a later
// attempt, a delete and a create again, finds the tomb moved past it and
// changes nothing.
func (s *Store) Create(ctx context.Context, rec store.Record) (out store.Record, err error) {
	now := time.Now().UTC()
	b, err := json.Marshal(value{Type: rec.Type, Props: rec.Props, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return store.Record{}, err
	}
	w, sent := s.marker(), false
	defer func() { s.done(w, sent) }()
	err = s.call(ctx, func(ctx context.Context) error {
		k, t := s.key(rec.ID), s.tomb(rec.ID)
		// Any delete after this attempt was sent puts the tomb at a
		// revision past every one this Store has seen; one before that
		// this Store has not seen fails the guard, and its revision is
		// seen for the next attempt.
		seen := s.rev.Load()
		sent = true
		res, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(k), "=", 0),
			clientv3.Compare(clientv3.ModRevision(t), "<", seen+1),
			clientv3.Compare(clientv3.CreateRevision(w), "=", 0),
		).Then(clientv3.OpPut(k, string(b)), clientv3.OpDelete(t), clientv3.OpPut(w, "")).
			Else(clientv3.OpGet(k), clientv3.OpGet(w)).Commit()
		if err != nil {
			return err
		}
		s.saw(res.Header)
		inc := res.Header.Revision
		if !res.Succeeded {
			if inc = landed(res.Responses[1]); inc == 0 {
				if len(res.Responses[0].GetResponseRange().Kvs) == 0 {
					return errRaced // a delete this Store had not seen: now it has
				}
				return store.ErrExists
			}
		}
		out = store.Record{ID: rec.ID, Type: rec.Type, Props: append(json.RawMessage(nil), rec.Props...), Version: 1,
			Incarnation: inc, Revision: inc, CreatedAt: now, UpdatedAt: now}
		return nil
	})
	return out, err
}

// attempt bounds one attempt of a call: a request to a member that hangs
// (paused, or cut off from its peers) is tried again on another, so that
// a write is answered within a second or two of a member's fault rather
// than at the timeout. An attempt applied late changes nothing (the
// guards of Create, Update and Delete can never come true again).
const attempt = time.Second

// saw notes the revision of an answer of etcd's.
func (s *Store) saw(h *etcdserverpb.ResponseHeader) {
	if h == nil {
		return
	}
	for {
		cur := s.rev.Load()
		if h.Revision <= cur || s.rev.CompareAndSwap(cur, h.Revision) {
			return
		}
	}
}

// errRaced is an attempt whose reads a write of another moved before its
// transaction: the next attempt reads again.
var errRaced = errors.New("etcd store: raced another write; trying again")

// Update implements store.Store. It fails with an *InUseError while an
// instance holds a ref on the record. Its guard is the mod revision it
// read, one state of the key ever, so that an attempt applied late
// changes nothing.
func (s *Store) Update(ctx context.Context, rec store.Record, at store.Tag) (out store.Record, err error) {
	w, sent := s.marker(), false
	defer func() { s.done(w, sent) }()
	var v value
	result := func(rev int64) {
		out = store.Record{ID: rec.ID, Type: rec.Type, Props: append(json.RawMessage(nil), rec.Props...), Version: at.Version + 1,
			Incarnation: at.Incarnation, Revision: rev, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
	}
	err = s.call(ctx, func(ctx context.Context) error {
		k := s.key(rec.ID)
		cur, err := s.cli.Get(ctx, k)
		if err != nil {
			return err
		}
		s.saw(cur.Header)
		var refusal error
		if len(cur.Kvs) == 0 {
			refusal = store.ErrNotFound
		} else if kv := cur.Kvs[0]; kv.CreateRevision != at.Incarnation || kv.Version != at.Version {
			refusal = store.ErrVersionMismatch
		}
		if refusal != nil {
			if sent {
				// An earlier attempt may have been applied, or be yet.
				rev, err := s.fence(ctx, w)
				if err != nil {
					return err
				}
				if rev != 0 {
					result(rev)
					return nil
				}
			}
			return refusal
		}
		kv := cur.Kvs[0]
		now := time.Now().UTC()
		v = value{}
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			// A damaged record is mended by the update.
			v = value{CreatedAt: now}
		}
		v.Type, v.Props, v.UpdatedAt = rec.Type, rec.Props, now
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		sent = true
		res, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision),
			clientv3.Compare(clientv3.CreateRevision(s.refsOf(rec.ID)), "=", 0).WithPrefix(),
			clientv3.Compare(clientv3.CreateRevision(w), "=", 0),
		).Then(clientv3.OpPut(k, string(b)), clientv3.OpPut(w, "")).
			Else(clientv3.OpGet(k), clientv3.OpGet(s.refsOf(rec.ID), clientv3.WithPrefix(), clientv3.WithLimit(50)), clientv3.OpGet(w)).Commit()
		if err != nil {
			return err
		}
		s.saw(res.Header)
		if !res.Succeeded {
			if rev := landed(res.Responses[2]); rev != 0 {
				result(rev)
				return nil
			}
			return s.refused(rec.ID, at, res)
		}
		result(res.Header.Revision)
		return nil
	})
	return out, err
}

// Delete implements store.Store. It fails with an *InUseError while an
// instance holds a ref on the record. Its guard is the Tag (create
// revision and version: one state of the key, ever), and it puts the
// id's tomb, which moves every create's guard on.
func (s *Store) Delete(ctx context.Context, id string, at store.Tag) error {
	w, sent := s.marker(), false
	defer func() { s.done(w, sent) }()
	return s.call(ctx, func(ctx context.Context) error {
		k := s.key(id)
		sent = true
		res, err := s.cli.Txn(ctx).If(
			clientv3.Compare(clientv3.CreateRevision(k), "=", at.Incarnation),
			clientv3.Compare(clientv3.Version(k), "=", at.Version),
			clientv3.Compare(clientv3.CreateRevision(s.refsOf(id)), "=", 0).WithPrefix(),
			clientv3.Compare(clientv3.CreateRevision(w), "=", 0),
		).Then(clientv3.OpDelete(k), clientv3.OpPut(s.tomb(id), ""), clientv3.OpPut(w, "")).
			Else(clientv3.OpGet(k), clientv3.OpGet(s.refsOf(id), clientv3.WithPrefix(), clientv3.WithLimit(50)), clientv3.OpGet(w)).Commit()
		if err != nil {
			return err
		}
		s.saw(res.Header)
		if !res.Succeeded {
			if landed(res.Responses[2]) != 0 {
				return nil // an earlier attempt deleted it
			}
			return s.refused(id, at, res)
		}
		return nil
	})
}

// refused tells why a guarded write failed, from its Else reads: no
// record, another incarnation or version (or, for an update, a write in
// between), or refs.
func (s *Store) refused(id string, at store.Tag, res *clientv3.TxnResponse) error {
	recs := res.Responses[0].GetResponseRange().Kvs
	if len(recs) == 0 {
		return store.ErrNotFound
	}
	if recs[0].CreateRevision != at.Incarnation || recs[0].Version != at.Version {
		return store.ErrVersionMismatch
	}
	refs := res.Responses[1].GetResponseRange().Kvs
	if len(refs) == 0 {
		return store.ErrVersionMismatch // written between our read and the transaction
	}
	return &store.InUseError{ID: id, Refs: s.parseRefs(id, refs)}
}

// parseRefs reads the refs of the record id from their keys, each once.
func (s *Store) parseRefs(id string, kvs []*mvccpb.KeyValue) []store.Ref {
	var out []store.Ref
	for _, kv := range kvs {
		// INSTANCE/TOKEN/REF
		inst, rest, _ := strings.Cut(strings.TrimPrefix(string(kv.Key), s.refsOf(id)), "/")
		_, ref, _ := strings.Cut(rest, "/")
		if r, err := url.PathUnescape(ref); err == nil {
			ref = r
		}
		if r := (store.Ref{Instance: inst, Name: ref}); !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// Refs implements store.RefReader.
func (s *Store) Refs(ctx context.Context, id string) (refs []store.Ref, err error) {
	err = s.call(ctx, func(ctx context.Context) error {
		res, err := s.cli.Get(ctx, s.refsOf(id), clientv3.WithPrefix(), clientv3.WithLimit(50))
		if err != nil {
			return err
		}
		refs = s.parseRefs(id, res.Kvs)
		return nil
	})
	return refs, err
}

// Close implements store.Store: it withdraws this instance's refs and
// closes the client.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	lease := s.lease
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	s.cli.Revoke(ctx, lease)
	s.clearMarkers(ctx)
	cancel()
	return s.cli.Close()
}
