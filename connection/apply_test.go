package connection_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/secret"
)

func actions(as []connection.Applied) string {
	var s []string
	for _, a := range as {
		s = append(s, a.ID+":"+string(a.Action))
	}
	return strings.Join(s, " ")
}

// TestApply: a set applied twice changes nothing the second time (same
// versions, no redial); a change updates only what differs; a secret sent
// as the mask is equal to the stored one.
func TestApply(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SetUp("p1", true)
	set := []connection.Spec{
		spec("a", map[string]any{"addr": "p1", "password": "pw"}),
		spec("b", map[string]any{"addr": "p1", "retries": 3}),
	}
	res, err := e.m.Apply(ctx, set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(res); got != "a:create b:create" || res[0].Version != 1 {
		t.Fatalf("first apply: %s %+v", got, res)
	}
	waitState(t, e.m, "a", connection.StateConnected)
	waitState(t, e.m, "b", connection.StateConnected)
	dials := e.fake.Dials("p1")
	res, err = e.m.Apply(ctx, set, nil)
	if err != nil || actions(res) != "a:unchanged b:unchanged" || res[0].Version != 1 || res[1].Version != 1 {
		t.Fatalf("second apply: %s %+v %v", actions(res), res, err)
	}
	// The mask keeps the stored secret: equal.
	set[0].Props = map[string]any{"addr": "p1", "password": secret.Mask}
	set[1].Props = map[string]any{"addr": "p1", "retries": 4}
	res, err = e.m.Apply(ctx, set, nil)
	if err != nil || actions(res) != "a:unchanged b:update" || res[1].Version != 2 {
		t.Fatalf("third apply: %s %+v %v", actions(res), res, err)
	}
	waitState(t, e.m, "b", connection.StateConnected)
	if got := e.fake.Dials("p1"); got != dials+1 {
		t.Errorf("dials %d, want %d: only b redialed", got, dials+1)
	}
}

// TestApplyInvalidSetChangesNothing: one bad entry, or an id given twice,
// is a 400 naming the entry; nothing is applied.
func TestApplyInvalidSetChangesNothing(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.m.Apply(ctx, []connection.Spec{
		spec("a", nil),
		spec("b", map[string]any{"adr": "p1"}),
	}, nil)
	ce := wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
	var fields []string
	for _, f := range ce.Fields {
		fields = append(fields, f.Field)
	}
	if got := strings.Join(fields, ","); got != "[1].addr,[1].adr" {
		t.Fatalf("fields %s: %v", got, err)
	}
	if len(e.m.List()) != 0 {
		t.Fatalf("an invalid set created %d connections", len(e.m.List()))
	}
	_, err = e.m.Apply(ctx, []connection.Spec{spec("a", nil), spec("a", nil)}, nil)
	ce = wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
	if ce.Fields[0].Field != "[1].id" {
		t.Fatalf("duplicate id: %v", err)
	}
}

// TestApplyRefusedAndPrune: a held connection that would change is
// refused with its refs, the rest apply; prune deletes what the set does
// not name, except what is held; a dry run changes nothing.
func TestApplyRefusedAndPrune(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SetUp("p1", true)
	for _, id := range []string{"a", "b", "old", "held"} {
		if _, err := e.m.Create(ctx, spec(id, nil)); err != nil {
			t.Fatal(err)
		}
	}
	attachFake(t, e.m, "a", "rule1/sink")
	attachFake(t, e.m, "held", "rule2/source")
	set := []connection.Spec{
		spec("a", map[string]any{"addr": "p2"}),
		spec("b", map[string]any{"addr": "p2"}),
		spec("c", nil),
	}
	dry, err := e.m.Apply(ctx, set, &connection.ApplyOptions{Prune: true, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(dry); got != "a:refused b:update c:create held:refused old:delete" {
		t.Fatalf("dry run: %s", got)
	}
	if dry[0].Refs[0] != "rule1/sink" || len(e.m.List()) != 4 {
		t.Fatalf("dry run: %+v, %d connections", dry, len(e.m.List()))
	}
	if in, _ := e.m.Get("b"); in.Version != 1 {
		t.Fatalf("a dry run updated b")
	}
	res, err := e.m.Apply(ctx, set, &connection.ApplyOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := actions(res), actions(dry); got != want {
		t.Fatalf("apply %s, dry run said %s", got, want)
	}
	if res[0].Err == nil || res[0].Refs[0] != "rule1/sink" || res[3].Refs[0] != "rule2/source" {
		t.Fatalf("refused: %+v", res)
	}
	var ids []string
	for _, in := range e.m.List() {
		ids = append(ids, in.ID+":"+in.Props["addr"].(string))
	}
	if got := strings.Join(ids, " "); got != "a:p1 b:p2 c:p1 held:p1" {
		t.Fatalf("after apply: %s", got)
	}
}

// TestSecretReference: a reference is stored and shown as it is; one
// that cannot be read leaves the connection stored, down and permanent,
// naming the field; once it can be read, a reconnect makes it run with
// the secret it names, which no log holds.
func TestSecretReference(t *testing.T) {
	e := newEnv(t, nil)
	e.fake.SetUp("p1", true)
	ref := "${env:CONNKIT_SECRET_REFTEST}"
	in, err := e.m.Create(ctx, spec("a", map[string]any{"addr": "p1", "password": ref}))
	if err != nil {
		t.Fatalf("create with an unset variable: %v", err)
	}
	if in.Props["password"] != ref || in.State != connection.StateDisconnected || !in.Permanent ||
		!strings.Contains(in.Err, "password: ${env:CONNKIT_SECRET_REFTEST}: environment variable CONNKIT_SECRET_REFTEST is not set") {
		t.Fatalf("unset: %+v", in)
	}
	recs, _ := e.st.List(ctx)
	if !strings.Contains(string(recs[0].Props), ref) {
		t.Fatalf("stored: %s", recs[0].Props)
	}
	if _, err := e.m.Attach(ctx, "a", "r"); err == nil {
		t.Fatal("attached to a connection that cannot run")
	}
	err = e.m.Reconnect(ctx, "a")
	wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
	t.Setenv("CONNKIT_SECRET_REFTEST", "s3cret-from-env")
	if err := e.m.Reconnect(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, "a", connection.StateConnected)
	conn := attachFake(t, e.m, "a", "r")
	if conn.Props()["password"] != "s3cret-from-env" {
		t.Fatalf("the connection dialed with %v", conn.Props()["password"])
	}
	// Unchanged by an Apply of the same reference.
	res, err := e.m.Apply(ctx, []connection.Spec{spec("a", map[string]any{"addr": "p1", "password": ref})}, nil)
	if err != nil || res[0].Action != connection.ActionUnchanged {
		t.Fatalf("apply of the same reference: %+v %v", res, err)
	}
	conn.Log("dialed with s3cret-from-env")
	if strings.Contains(e.logs.String(), "s3cret-from-env") {
		t.Fatalf("the resolved secret reached the log:\n%s", e.logs)
	}
}

// TestApplyEqualOnceDecoded: 3 and 3.0, or a default left out and given,
// are the same props: unchanged, no new version. A set past the limit of
// connections, or with many bad entries, gets a bounded answer.
func TestApplyEqualOnceDecoded(t *testing.T) {
	e := newEnv(t, nil)
	set := []connection.Spec{spec("a", map[string]any{"addr": "p1", "retries": 3})}
	if _, err := e.m.Apply(ctx, set, nil); err != nil {
		t.Fatal(err)
	}
	for _, props := range []map[string]any{{"addr": "p1", "retries": 3.0}, {"addr": "p1", "retries": json.Number("3e0")}} {
		res, err := e.m.Apply(ctx, []connection.Spec{spec("a", props)}, nil)
		if err != nil || res[0].Action != connection.ActionUnchanged || res[0].Version != 1 {
			t.Fatalf("%v: %+v %v", props, res, err)
		}
	}
	bad := make([]connection.Spec, 100)
	for i := range bad {
		bad[i] = spec(fmt.Sprint("b", i), map[string]any{"adr": "x"})
	}
	_, err := e.m.Apply(ctx, bad, nil)
	ce := wantCode(t, err, connection.CodeInvalidArgument, connection.ErrInvalidArgument)
	if len(ce.Fields) > 22 || !strings.Contains(ce.Message, "more entries not checked") {
		t.Fatalf("%d fields: %.300s", len(ce.Fields), ce.Message)
	}
}
