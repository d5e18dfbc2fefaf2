package connection_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/secret"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
	"github.com/connkit/connkit/store"
	"github.com/connkit/connkit/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a log sink safe for the dial goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	m    *connection.Manager
	fake *connectortest.Fake
	st   store.Store
	reg  *registry.Registry
	logs *syncBuffer
}

func newEnv(t *testing.T, st store.Store) *env {
	t.Helper()
	if st == nil {
		st = memory.New()
	}
	e := &env{fake: connectortest.NewFake(), st: st, reg: &registry.Registry{}, logs: &syncBuffer{}}
	e.reg.Register("fake", e.fake)
	e.m = e.open(t)
	return e
}

func (e *env) open(t *testing.T) *connection.Manager {
	t.Helper()
	m, err := connection.New(context.Background(), e.st, &connection.Options{
		Registry:    e.reg,
		Logger:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinBackoff:  2 * time.Millisecond,
		MaxBackoff:  20 * time.Millisecond,
		DialTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitState(t *testing.T, m *connection.Manager, id string, want connection.State) connection.Info {
	t.Helper()
	var in connection.Info
	waitFor(t, string(want)+" of "+id, func() bool {
		var err error
		in, err = m.Get(id)
		return err == nil && in.State == want
	})
	return in
}

var ctx = context.Background()

func spec(id string, props map[string]any) connection.Spec {
	if props == nil {
		props = map[string]any{"addr": "p1"}
	}
	return connection.Spec{ID: id, Type: "fake", Props: props}
}

func wantCode(t *testing.T, err error, code connection.Code, sentinel error) *connection.Error {
	t.Helper()
	if connection.CodeOf(err) != code || !errors.Is(err, sentinel) {
		t.Fatalf("error %v: code %q, want %q", err, connection.CodeOf(err), code)
	}
	var ce *connection.Error
	errors.As(err, &ce)
	return ce
}

func TestCreateConnects(t *testing.T) {
	e := newEnv(t, nil)
	before := time.Now().Add(-time.Second)
	in, err := e.m.Create(ctx, spec("Conn_1", nil))
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "Conn_1" || in.Type != "fake" || in.Version != 1 || in.RefCount != 0 || in.CreatedAt.Before(before) {
		t.Errorf("Create returned %+v", in)
	}
	if in.Props["addr"] != "p1" {
		t.Errorf("props %v", in.Props)
	}
	got := waitState(t, e.m, "Conn_1", connection.StateConnected)
	if got.Err != "" || got.Since.Before(before) {
		t.Errorf("connected status %+v", got.Status)
	}
	rec, err := e.st.Get(ctx, "Conn_1")
	if err != nil || rec.Version != 1 {
		t.Fatalf("stored: %+v %v", rec, err)
	}
	if _, err := e.m.Get("conn_1"); !errors.Is(err, connection.ErrNotFound) {
		t.Errorf("ids must keep their case: %v", err)
	}
}

func TestCreateInvalid(t *testing.T) {
	e := newEnv(t, nil)
	long := strings.Repeat("a", 129)
	cases := []struct {
		name   string
		spec   connection.Spec
		fields []string
	}{
		{"empty id", spec("", nil), []string{"id"}},
		{"id too long", spec(long, nil), []string{"id"}},
		{"id with slash", spec("a/b", nil), []string{"id"}},
		{"id with space", spec("a b", nil), []string{"id"}},
		{"id with dot", spec("a.b", nil), []string{"id"}},
		{"unknown type", connection.Spec{ID: "a", Type: "nope", Props: map[string]any{}}, []string{"typ"}},
		{"missing required", spec("a", map[string]any{}), []string{"addr"}},
		{"unknown prop", spec("a", map[string]any{"addr": "p", "server": "x"}), []string{"server"}},
		{"wrong kind", spec("a", map[string]any{"addr": 1}), []string{"addr"}},
		{"not allowed", spec("a", map[string]any{"addr": "p", "mode": "c"}), []string{"mode"}},
		{"not whole", spec("a", map[string]any{"addr": "p", "retries": 1.5}), []string{"retries"}},
		{"several", spec("a", map[string]any{"mode": 3, "x": true}), []string{"addr", "mode", "x"}},
		{"refused by Open", spec("a", map[string]any{"addr": "invalid"}), []string{"addr"}},
		{"not JSON", spec("a", map[string]any{"addr": "p", "header": map[string]any{"c": make(chan int)}}), []string{"props"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.Create(ctx, tc.spec)
			ce := wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
			var fields []string
			for _, f := range ce.Fields {
				fields = append(fields, f.Field)
				if f.Message == "" {
					t.Errorf("field %s has no message", f.Field)
				}
			}
			if diff := cmp.Diff(tc.fields, fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
	if l, _ := e.st.List(ctx); len(l) != 0 {
		t.Errorf("invalid creates stored %d records", len(l))
	}
	if n := e.fake.OpenConns("p"); n != 0 {
		t.Errorf("%d conns left open by invalid creates", n)
	}
	if l := e.m.List(); len(l) != 0 {
		t.Errorf("List after invalid creates: %v", l)
	}
}

func TestCreateExists(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.Create(ctx, spec("a", map[string]any{"addr": "p2"}))
	wantCode(t, err, connection.CodeAlreadyExists, connection.ErrAlreadyExists)
	if in, _ := e.m.Get("a"); in.Props["addr"] != "p1" {
		t.Errorf("a refused create changed the connection: %v", in.Props)
	}
	if n := e.fake.OpenConns("p2"); n != 0 {
		t.Errorf("the refused create left %d conns open", n)
	}
}

func TestGetListNotFound(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.m.Get("nope")
	wantCode(t, err, connection.CodeNotFound, connection.ErrNotFound)
	for _, id := range []string{"c", "A", "b", "a"} {
		if _, err := e.m.Create(ctx, spec(id, nil)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for _, in := range e.m.List() {
		ids = append(ids, in.ID)
	}
	if diff := cmp.Diff([]string{"A", "a", "b", "c"}, ids); diff != "" {
		t.Errorf("List order (-want +got):\n%s", diff)
	}
}

func TestSecretsMasked(t *testing.T) {
	e := newEnv(t, nil)
	props := map[string]any{
		"addr":     "p1",
		"password": "hunter2",
		"url":      "mysql://root:s3cret@127.0.0.1:3306/db",
		"header":   map[string]any{"authorization": "Bearer tok3n", "X-Plain": "v"},
	}
	in, err := e.m.Create(ctx, spec("a", props))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"addr":     "p1",
		"password": secret.Mask,
		"url":      "mysql://root:" + secret.Mask + "@127.0.0.1:3306/db",
		"header":   map[string]any{"authorization": secret.Mask, "X-Plain": "v"},
	}
	if diff := cmp.Diff(want, in.Props); diff != "" {
		t.Errorf("Create props (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, e.m.List()[0].Props); diff != "" {
		t.Errorf("List props (-want +got):\n%s", diff)
	}
	// Mutating what Get returned must not reach the Manager.
	in.Props["header"].(map[string]any)["X-Plain"] = "changed"
	if g, _ := e.m.Get("a"); g.Props["header"].(map[string]any)["X-Plain"] != "v" {
		t.Error("Info shares its props with the Manager")
	}

	// Sending the masks back keeps every stored secret.
	up, err := e.m.Update(ctx, spec("a", want), connection.Tag{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, up.Props); diff != "" {
		t.Errorf("Update props (-want +got):\n%s", diff)
	}
	c := attachFake(t, e.m, "a", "r")
	defer e.m.Detach("a", "r")
	p := c.Props()
	if p.String("password") != "hunter2" || p.String("url") != props["url"] || p.Map("header")["authorization"] != "Bearer tok3n" {
		t.Errorf("after a masked update the conn has %v, want the stored secrets", p)
	}
	if strings.Contains(e.logs.String(), "hunter2") || strings.Contains(e.logs.String(), "s3cret") {
		t.Errorf("a secret reached the log:\n%s", e.logs)
	}
}

// TestSecretBoundToEndpoint: an update that moves the connection to
// another addr while sending a mask back is refused, names the secret,
// stores nothing and dials nothing; with the secret given again it goes.
func TestSecretBoundToEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("a", map[string]any{"addr": "p1", "password": "hunter2"})); err != nil {
		t.Fatal(err)
	}
	_, err := e.m.Update(ctx, spec("a", map[string]any{"addr": "evil", "password": secret.Mask}), connection.Tag{})
	ce := wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
	if len(ce.Fields) != 1 || ce.Fields[0].Field != "password" || !strings.Contains(ce.Message, "addr changed: give password again") {
		t.Errorf("error %v %+v", err, ce.Fields)
	}
	if in, _ := e.m.Get("a"); in.Version != 1 || in.Props["addr"] != "p1" {
		t.Errorf("a refused update changed the connection: %+v", in)
	}
	if n := e.fake.Dials("evil"); n != 0 {
		t.Errorf("the other addr was dialed %d times", n)
	}
	// A new type never inherits a secret either.
	_, err = e.m.Create(ctx, spec("b", map[string]any{"addr": "p1", "password": secret.Mask}))
	wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
	if _, err := e.m.Update(ctx, spec("a", map[string]any{"addr": "evil", "password": "for-evil"}), connection.Tag{}); err != nil {
		t.Fatalf("the secret given again: %v", err)
	}
}

func attachFake(t *testing.T, m *connection.Manager, id, ref string) *connectortest.FakeConn {
	t.Helper()
	c, err := m.Attach(ctx, id, ref)
	if err != nil {
		t.Fatal(err)
	}
	return c.(*connectortest.FakeClient).Conn()
}

func TestStatusFollowsPeer(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SetUp("p1", false)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	in := waitState(t, e.m, "a", connection.StateDisconnected)
	if !strings.Contains(in.Err, "connection refused") || in.Permanent {
		t.Errorf("down peer: %+v", in.Status)
	}
	// It keeps retrying and comes up on its own.
	n := e.fake.Dials("p1")
	waitFor(t, "more dials", func() bool { return e.fake.Dials("p1") > n+2 })
	e.fake.SetUp("p1", true)
	in = waitState(t, e.m, "a", connection.StateConnected)
	if in.Err != "" {
		t.Errorf("connected with err %q", in.Err)
	}
	// A drop is seen, then repaired.
	e.fake.SetUp("p1", false)
	in = waitState(t, e.m, "a", connection.StateDisconnected)
	if !strings.Contains(in.Err, "went away") && !strings.Contains(in.Err, "refused") {
		t.Errorf("after a drop: %+v", in.Status)
	}
	e.fake.SetUp("p1", true)
	waitState(t, e.m, "a", connection.StateConnected)
}

func TestPermanentErrorScrubbed(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SetAuthFail("p1", true)
	if _, err := e.m.Create(ctx, spec("a", map[string]any{"addr": "p1", "password": "hunter2"})); err != nil {
		t.Fatal(err)
	}
	in := waitState(t, e.m, "a", connection.StateDisconnected)
	if !in.Permanent || !strings.Contains(in.Err, "refused password") {
		t.Errorf("status %+v, want a permanent auth error", in.Status)
	}
	if strings.Contains(in.Err, "hunter2") || strings.Contains(e.logs.String(), "hunter2") {
		t.Errorf("the password leaked: status %q, logs:\n%s", in.Err, e.logs)
	}
}

func TestDialTimeout(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SetHang("p1", true)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	if in, _ := e.m.Get("a"); in.State != connection.StateConnecting {
		t.Errorf("first state %q, want connecting", in.State)
	}
	in := waitState(t, e.m, "a", connection.StateDisconnected)
	if !strings.Contains(in.Err, "no answer within") {
		t.Errorf("hung dial: %+v", in.Status)
	}
	// Close must not wait for hung dials beyond their context.
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAttachShares(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	first := attachFake(t, e.m, "a", "rule2/sink")
	for i := 0; i < 100; i++ {
		if c := attachFake(t, e.m, "a", "rule1/source"); c != first {
			t.Fatal("Attach returned a different live connection")
		}
	}
	in, _ := e.m.Get("a")
	if in.RefCount != 101 || !cmp.Equal(in.Refs, []string{"rule1/source", "rule2/sink"}) {
		t.Errorf("refs %d %v", in.RefCount, in.Refs)
	}
	// Every attach needs its own release; the name goes with the last.
	for range 99 {
		e.m.Detach("a", "rule1/source")
	}
	if got := first.Released(); len(got) != 0 {
		t.Errorf("Released %v while rule1/source is still attached once", got)
	}
	e.m.Detach("a", "rule1/source")
	e.m.Detach("a", "rule1/source")
	e.m.Detach("a", "never")
	e.m.Detach("nope", "x")
	in, _ = e.m.Get("a")
	if in.RefCount != 1 || !cmp.Equal(in.Refs, []string{"rule2/sink"}) {
		t.Errorf("after detaches: %d %v", in.RefCount, in.Refs)
	}
	if got := first.Released(); !cmp.Equal(got, []string{"rule1/source"}) {
		t.Errorf("Released %v, want rule1/source once", got)
	}
	_, err := e.m.Attach(ctx, "nope", "r")
	wantCode(t, err, connection.CodeNotFound, connection.ErrNotFound)
	for _, ref := range []string{"", "   ", "\t", "a\nb", strings.Repeat("r", 257), "\xff", "\u200b", "\ufeff\u3000"} {
		_, err = e.m.Attach(ctx, "a", ref)
		ce := wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
		if len(ce.Fields) != 1 || ce.Fields[0].Field != "ref" || !strings.Contains(ce.Message, "ref") {
			t.Errorf("ref %q: %v %+v", ref, err, ce.Fields)
		}
	}
}

func TestRefsBlockWrites(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	attachFake(t, e.m, "a", "rule1/source")
	attachFake(t, e.m, "a", "rule0/sink")
	_, err := e.m.Update(ctx, spec("a", map[string]any{"addr": "p2"}), connection.Tag{})
	ce := wantCode(t, err, connection.CodeInUse, connection.ErrInUse)
	if !cmp.Equal(ce.Refs, []string{"rule0/sink", "rule1/source"}) || !strings.Contains(ce.Message, "rule1/source") {
		t.Errorf("in_use error %q refs %v", ce.Message, ce.Refs)
	}
	ce = wantCode(t, e.m.Delete(ctx, "a", connection.Tag{}), connection.CodeInUse, connection.ErrInUse)
	if len(ce.Refs) != 2 {
		t.Errorf("refs %v", ce.Refs)
	}
	if in, _ := e.m.Get("a"); in.Version != 1 || in.Props["addr"] != "p1" {
		t.Errorf("refused writes changed it: %+v", in)
	}
	e.m.Detach("a", "rule1/source")
	e.m.Detach("a", "rule0/sink")
	if err := e.m.Delete(ctx, "a", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
}

func TestUpdate(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, "a", connection.StateConnected)
	old := attachFake(t, e.m, "a", "r")
	e.m.Detach("a", "r")

	_, err := e.m.Update(ctx, spec("a", map[string]any{"addr": "p2"}), connection.Tag{Version: 7})
	wantCode(t, err, connection.CodeVersionMismatch, connection.ErrVersionMismatch)
	_, err = e.m.Update(ctx, spec("nope", nil), connection.Tag{})
	wantCode(t, err, connection.CodeNotFound, connection.ErrNotFound)
	_, err = e.m.Update(ctx, connection.Spec{ID: "a", Type: "nope"}, connection.Tag{})
	wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)

	// An invalid update leaves the old connection stored and running.
	_, err = e.m.Update(ctx, spec("a", map[string]any{"addr": "p2", "mode": "z"}), connection.Tag{})
	wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
	if old.Closed() {
		t.Fatal("a failed update closed the live connection")
	}
	if in, _ := e.m.Get("a"); in.Version != 1 || in.State != connection.StateConnected || in.Props["addr"] != "p1" {
		t.Fatalf("after a failed update: %+v", in)
	}

	a, _ := e.m.Get("a")
	in, err := e.m.Update(ctx, spec("a", map[string]any{"addr": "p2"}), a.Tag())
	if err != nil {
		t.Fatal(err)
	}
	if in.Version != 2 || in.Props["addr"] != "p2" || !in.UpdatedAt.After(in.CreatedAt) && !in.UpdatedAt.Equal(in.CreatedAt) {
		t.Errorf("Update returned %+v", in)
	}
	if !old.Closed() {
		t.Error("the old conn is still open after the update")
	}
	waitState(t, e.m, "a", connection.StateConnected)
	if n := e.fake.OpenConns("p1"); n != 0 {
		t.Errorf("%d conns to the old peer left open", n)
	}
	if c := attachFake(t, e.m, "a", "r"); c == old || c.Props().String("addr") != "p2" {
		t.Error("Attach after update returned the old conn")
	}
	e.m.Detach("a", "r")
}

func TestDelete(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	c := attachFake(t, e.m, "a", "r")
	e.m.Detach("a", "r")
	a, _ := e.m.Get("a")
	wantCode(t, e.m.Delete(ctx, "a", connection.Tag{Incarnation: a.Incarnation, Version: 3}), connection.CodeVersionMismatch, connection.ErrVersionMismatch)
	if err := e.m.Delete(ctx, "a", a.Tag()); err != nil {
		t.Fatal(err)
	}
	if !c.Closed() {
		t.Error("Delete left the live connection open")
	}
	if _, err := e.st.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("store after Delete: %v", err)
	}
	wantCode(t, e.m.Delete(ctx, "a", connection.Tag{}), connection.CodeNotFound, connection.ErrNotFound)
	wantCode(t, e.m.Delete(ctx, "bad id", connection.Tag{}), connection.CodeInvalidArgument, connection.ErrInvalidArgument)
	// The id can be used again.
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
}

// failStore fails every write while fail is set.
type failStore struct {
	store.Store
	fail atomic.Bool
}

var errDisk = errors.New("disk full")

func (f *failStore) Create(ctx context.Context, r store.Record) (store.Record, error) {
	if f.fail.Load() {
		return store.Record{}, errDisk
	}
	return f.Store.Create(ctx, r)
}

func (f *failStore) Update(ctx context.Context, r store.Record, v store.Tag) (store.Record, error) {
	if f.fail.Load() {
		return store.Record{}, errDisk
	}
	return f.Store.Update(ctx, r, v)
}

func (f *failStore) Delete(ctx context.Context, id string, v store.Tag) error {
	if f.fail.Load() {
		return errDisk
	}
	return f.Store.Delete(ctx, id, v)
}

func TestFailingStoreChangesNothing(t *testing.T) {
	fs := &failStore{Store: memory.New()}
	e := newEnv(t, fs)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, "a", connection.StateConnected)
	live := attachFake(t, e.m, "a", "r")
	e.m.Detach("a", "r")
	beforeInfo := e.m.List()
	beforeRecs, _ := fs.List(ctx)

	fs.fail.Store(true)
	_, err := e.m.Create(ctx, spec("b", nil))
	ce := wantCode(t, err, connection.CodeInternal, connection.ErrInternal)
	if !errors.Is(err, errDisk) || !strings.Contains(ce.Message, "nothing was changed") {
		t.Errorf("create error %v", err)
	}
	_, err = e.m.Update(ctx, spec("a", map[string]any{"addr": "p2"}), connection.Tag{})
	wantCode(t, err, connection.CodeInternal, connection.ErrInternal)
	wantCode(t, e.m.Delete(ctx, "a", connection.Tag{}), connection.CodeInternal, connection.ErrInternal)
	fs.fail.Store(false)

	if diff := cmp.Diff(beforeInfo, e.m.List()); diff != "" {
		t.Errorf("Manager changed (-before +after):\n%s", diff)
	}
	afterRecs, _ := fs.List(ctx)
	if diff := cmp.Diff(beforeRecs, afterRecs); diff != "" {
		t.Errorf("store changed (-before +after):\n%s", diff)
	}
	if live.Closed() {
		t.Error("a failed write closed the live connection")
	}
	if c := attachFake(t, e.m, "a", "r"); c != live {
		t.Error("a failed write replaced the live connection")
	}
	e.m.Detach("a", "r")
	if n := e.fake.OpenConns("p2") + e.fake.OpenConns("p1"); n != 1 {
		t.Errorf("%d conns open, want just the live one", n)
	}
	// And the id b stays free.
	if _, err := e.m.Create(ctx, spec("b", nil)); err != nil {
		t.Errorf("create after the store recovered: %v", err)
	}
}

func TestReload(t *testing.T) {
	st := memory.New()
	e := newEnv(t, st)
	for _, id := range []string{"a", "b"} {
		if _, err := e.m.Create(ctx, spec(id, map[string]any{"addr": "p1", "password": "pw"})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.m.Update(ctx, spec("b", map[string]any{"addr": "p1", "password": secret.Mask}), connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	want := e.m.List()
	e.m.Close()
	if n := e.fake.OpenConns("p1"); n != 0 {
		t.Fatalf("%d conns open after Close", n)
	}
	// A record whose type is not compiled in, written by another build.
	if _, err := st.Create(ctx, store.Record{ID: "z", Type: "gone", Props: []byte(`{"password":"pw","addr":"x"}`)}); err != nil {
		t.Fatal(err)
	}

	m2 := e.open(t)
	waitState(t, m2, "a", connection.StateConnected)
	waitState(t, m2, "b", connection.StateConnected)
	got := m2.List()
	if len(got) != 3 {
		t.Fatalf("reloaded %d connections, want 3", len(got))
	}
	ignoreStatus := cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Status" }, cmp.Ignore())
	if diff := cmp.Diff(want, got[:2], ignoreStatus); diff != "" {
		t.Errorf("reloaded (-before +after):\n%s", diff)
	}
	c, _ := m2.Attach(ctx, "b", "r")
	if c.(*connectortest.FakeClient).Conn().Props().String("password") != "pw" {
		t.Error("the secret did not survive the reload")
	}
	m2.Detach("b", "r")
	z := got[2]
	if z.State != connection.StateDisconnected || !z.Permanent || !strings.Contains(z.Err, `unknown type "gone"`) {
		t.Errorf("unknown type: %+v", z.Status)
	}
	if z.Props["password"] != secret.Mask || z.Props["addr"] != secret.Mask {
		t.Errorf("props of an unknown type must all be masked: %v", z.Props)
	}
	_, err := m2.Attach(ctx, "z", "r")
	wantCode(t, err, connection.CodeUnavailable, connection.ErrUnavailable)
	// It can still be deleted, or fixed by an update.
	if _, err := m2.Update(ctx, spec("z", nil), connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, m2, "z", connection.StateConnected)
}

func TestCloseStopsEverything(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	e := newEnv(t, nil)
	e.fake.SetUp("down", false)
	e.fake.SetHang("hang", true)
	for i, addr := range []string{"p1", "down", "hang", "p1"} {
		if _, err := e.m.Create(ctx, spec(string(rune('a'+i)), map[string]any{"addr": addr})); err != nil {
			t.Fatal(err)
		}
	}
	attachFake(t, e.m, "a", "r")
	waitState(t, e.m, "a", connection.StateConnected)
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, addr := range []string{"p1", "down", "hang"} {
		if n := e.fake.OpenConns(addr); n != 0 {
			t.Errorf("%d conns to %s open after Close", n, addr)
		}
	}
	n := e.fake.Dials("down")
	_, err := e.m.Create(ctx, spec("x", nil))
	wantCode(t, err, connection.CodeUnavailable, connection.ErrUnavailable)
	_, err = e.m.Attach(ctx, "a", "r2")
	wantCode(t, err, connection.CodeUnavailable, connection.ErrUnavailable)
	wantCode(t, e.m.Delete(ctx, "b", connection.Tag{}), connection.CodeUnavailable, connection.ErrUnavailable)
	if _, err := e.m.Get("a"); err != nil {
		t.Errorf("Get after Close: %v", err)
	}
	if e.fake.Dials("down") != n {
		t.Error("dialing went on after Close")
	}
}

// gateStore blocks writes until released, to hold a write in flight.
type gateStore struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (g *gateStore) Update(ctx context.Context, r store.Record, v store.Tag) (store.Record, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.Store.Update(ctx, r, v)
}

func TestWritesOnOneIDAreSerialised(t *testing.T) {
	gs := &gateStore{Store: memory.New(), entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, gs)
	if _, err := e.m.Create(ctx, spec("a", nil)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := e.m.Update(ctx, spec("a", map[string]any{"addr": "p2"}), connection.Tag{})
		done <- err
	}()
	<-gs.entered
	// While the update is in the store: reads answer at once, an attach
	// or a conflicting write waits and honours its context.
	if in, err := e.m.Get("a"); err != nil || in.Version != 1 {
		t.Fatalf("Get during an update: %+v %v", in, err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err := e.m.Attach(short, "a", "r")
	wantCode(t, err, connection.CodeDeadlineExceeded, connection.ErrDeadlineExceeded)
	wantCode(t, e.m.Delete(short, "a", connection.Tag{}), connection.CodeDeadlineExceeded, connection.ErrDeadlineExceeded)

	attached := make(chan *connectortest.FakeConn)
	go func() {
		c, _ := e.m.Attach(ctx, "a", "r")
		attached <- c.(*connectortest.FakeClient).Conn()
	}()
	close(gs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c := <-attached; c.Props().String("addr") != "p2" {
		t.Error("an attach waiting on an update got the old conn")
	}
	e.m.Detach("a", "r")
}

// TestConcurrentInvariants runs creates, updates, deletes, attaches and
// detaches at once on a few ids. A connection with refs is never deleted or
// updated, and a ref never holds a closed conn.
func TestConcurrentInvariants(t *testing.T) {
	e := newEnv(t, nil)
	ids := []string{"a", "b", "c"}
	const workers, rounds = 12, 300
	var wg sync.WaitGroup
	var violations atomic.Int64
	var attaches atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := "rule" + string(rune('A'+w))
			for i := range rounds {
				id := ids[(w+i)%len(ids)]
				switch (w + i) % 5 {
				case 0:
					e.m.Create(ctx, spec(id, nil))
				case 1:
					e.m.Update(ctx, spec(id, map[string]any{"addr": "p1", "retries": i}), connection.Tag{})
				case 2:
					e.m.Delete(ctx, id, connection.Tag{})
				default:
					c, err := e.m.Attach(ctx, id, ref)
					if err != nil {
						continue
					}
					attaches.Add(1)
					fc := c.(*connectortest.FakeClient).Conn()
					// While attached, the conn stays open and the
					// connection can be neither deleted nor updated.
					if fc.Closed() {
						violations.Add(1)
					}
					if err := e.m.Delete(ctx, id, connection.Tag{}); !errors.Is(err, connection.ErrInUse) {
						violations.Add(1)
						t.Errorf("Delete of an attached connection: %v", err)
					}
					if _, err := e.m.Update(ctx, spec(id, nil), connection.Tag{}); !errors.Is(err, connection.ErrInUse) {
						violations.Add(1)
						t.Errorf("Update of an attached connection: %v", err)
					}
					if in, err := e.m.Get(id); err != nil || in.RefCount < 1 {
						violations.Add(1)
						t.Errorf("attached connection: %+v %v", in, err)
					}
					if fc.Closed() {
						violations.Add(1)
					}
					e.m.Detach(id, ref)
					e.m.Detach(id, ref)
				}
			}
		}()
	}
	wg.Wait()
	if v := violations.Load(); v != 0 {
		t.Fatalf("%d invariant violations", v)
	}
	if attaches.Load() == 0 {
		t.Fatal("no attach succeeded: the test proved nothing")
	}
	// Afterwards: no refs left, the Manager agrees with the store, and
	// exactly one open conn per live connection.
	recs, _ := e.st.List(ctx)
	infos := e.m.List()
	if len(recs) != len(infos) {
		t.Fatalf("store has %d, Manager %d", len(recs), len(infos))
	}
	for i, in := range infos {
		if in.RefCount != 0 || len(in.Refs) != 0 {
			t.Errorf("%s: refs left %v", in.ID, in.Refs)
		}
		if recs[i].ID != in.ID || recs[i].Version != in.Version {
			t.Errorf("store %s v%d, Manager %s v%d", recs[i].ID, recs[i].Version, in.ID, in.Version)
		}
	}
	if n := e.fake.OpenConns("p1"); n != len(infos) {
		t.Errorf("%d open conns for %d connections", n, len(infos))
	}
}

// TestLimits: props past MaxPropsBytes are refused naming props; a create
// past MaxConnections is refused with limit_exceeded until one goes.
func TestLimits(t *testing.T) {
	e := newEnv(t, nil)
	m, err := connection.New(ctx, memory.New(), &connection.Options{Registry: e.m.Registry(), Logger: slog.New(slog.DiscardHandler),
		MaxPropsBytes: 100, MaxConnections: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.Create(ctx, spec("big", map[string]any{"addr": "p1", "header": map[string]any{"X": strings.Repeat("x", 100)}}))
	ce := wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
	if len(ce.Fields) != 1 || ce.Fields[0].Field != "props" {
		t.Errorf("props over the cap: %v", err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := m.Create(ctx, spec(id, nil)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = m.Create(ctx, spec("c", nil))
	wantCode(t, err, connection.CodeLimitExceeded, connection.ErrLimitExceeded)
	if err := m.Delete(ctx, "a", connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, spec("c", nil)); err != nil {
		t.Errorf("a create after a delete: %v", err)
	}
}

// TestLostAnyTime: a connector may report a lost link any number of
// times, during a Connect, and after Close; the Manager redials and ends
// connected, and never blocks or panics. The logger it hands connectors
// scrubs their secrets.
func TestLostAnyTime(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.m.Create(ctx, spec("a", map[string]any{"addr": "p1", "password": "hunter2"})); err != nil {
		t.Fatal(err)
	}
	first := waitState(t, e.m, "a", connection.StateConnected)
	fc := attachFake(t, e.m, "a", "r")
	e.m.Detach("a", "r")
	dials := e.fake.Dials("p1")
	for range 5 {
		fc.Lose(errors.New("gone"))
	}
	waitFor(t, "a redial after the losses", func() bool {
		in, _ := e.m.Get("a")
		return e.fake.Dials("p1") > dials && in.State == connection.StateConnected && in.Since.After(first.Since)
	})
	// A loss during a Connect: the dial hangs, the loss comes, the dial
	// ends; the Manager still ends connected.
	e.fake.SetHang("p1", true)
	fc.Lose(errors.New("gone again"))
	waitFor(t, "a dial to hang", func() bool { in, _ := e.m.Get("a"); return in.State == connection.StateDisconnected })
	fc.Lose(errors.New("during connect"))
	e.fake.SetHang("p1", false)
	waitState(t, e.m, "a", connection.StateConnected)
	fc.Log("driver says", "dsn", "user:hunter2@p1", "hunter2", 1, "quoted", `"hunter2"`, "escaped", "pw=hunter2%21")
	if strings.Contains(e.logs.String(), "hunter2") || !strings.Contains(e.logs.String(), "driver says") {
		t.Errorf("the connector's logger: %s", e.logs.String())
	}
	e.m.Close()
	done := make(chan struct{})
	go func() { fc.Lose(errors.New("after close")); fc.Lose(nil); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Lost after Close blocked")
	}
}

// TestPageJSONFollowsChanges: the JSON list, kept per connection, is the
// list of every moment: after an attach, a status change, an update.
func TestPageJSONFollowsChanges(t *testing.T) {
	e := newEnv(t, nil)
	for _, id := range []string{"a", "b"} {
		if _, err := e.m.Create(ctx, spec(id, nil)); err != nil {
			t.Fatal(err)
		}
		waitState(t, e.m, id, connection.StateConnected)
	}
	// While a peer is down its connection redials, and its status moves
	// between the two reads: they must agree at some moment.
	same := func(when string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, last, more := e.m.AppendPageJSON(nil, "", -1)
			want, _ := json.Marshal(e.m.List())
			if string(got) == string(want) && last == "b" && !more {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the JSON list\n%s\nis not the list\n%s", when, got, want)
			}
		}
	}
	same("at first")
	same("again, from the cache")
	attachFake(t, e.m, "a", "r1")
	same("after an attach")
	e.fake.SetUp("p1", false)
	waitState(t, e.m, "a", connection.StateDisconnected)
	waitState(t, e.m, "b", connection.StateDisconnected)
	same("after the peer went")
	e.m.Detach("a", "r1")
	if _, err := e.m.Update(ctx, spec("b", map[string]any{"addr": "p2"}), connection.Tag{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, "b", connection.StateConnected)
	same("after an update")
	if page, last, more := e.m.AppendPageJSON(nil, "", 1); !more || last != "a" || !strings.HasPrefix(string(page), `[{"id":"a"`) {
		t.Errorf("a page of one: %s %q %v", page, last, more)
	}
}
