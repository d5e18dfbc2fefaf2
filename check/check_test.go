package check_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/secret"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type noChecks struct{}

func (noChecks) Schema() *connector.Schema { return &connector.Schema{} }
func (noChecks) Open(connector.Props, connector.Events) (connector.Conn, error) {
	return nil, errors.New("unused")
}

func setup(opts check.Options) (*check.Checker, *connectortest.Fake) {
	fake := connectortest.NewFake()
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	reg.Register("plain", noChecks{})
	opts.Registry = reg
	return check.New(&opts), fake
}

func wantKind(t *testing.T, err error, kind error, reason string) *check.Error {
	t.Helper()
	var ce *check.Error
	if !errors.As(err, &ce) || !errors.Is(err, kind) || ce.Reason != reason {
		t.Fatalf("error %v (%+v), want kind %v reason %q", err, ce, kind, reason)
	}
	return ce
}

func TestOutcomes(t *testing.T) {
	c, fake := setup(check.Options{Timeout: 200 * time.Millisecond})
	ctx := context.Background()
	res, err := c.Sink(ctx, check.Request{Type: "fake", Props: map[string]any{"addr": "ok", "table": "t", "fields": []any{"a"}}})
	if took := res.Took; err != nil || took <= 0 || len(res.Steps) == 0 || !res.Steps[len(res.Steps)-1].OK {
		t.Fatalf("good sink: %+v %v", res, err)
	}
	if _, err := c.Source(ctx, check.Request{Type: "fake", Props: map[string]any{"addr": "ok"}}); err != nil {
		t.Fatalf("good source: %v", err)
	}
	fake.SetUp("down", false)
	wantKind(t, mustFail(c.Sink(ctx, check.Request{Type: "fake", Props: map[string]any{"addr": "down"}})), check.ErrFailed, connector.ReasonRefused)
	fake.SetAuthFail("auth", true)
	ce := wantKind(t, mustFail(c.Source(ctx, check.Request{Type: "fake", Props: map[string]any{"addr": "auth", "password": "hunter2"}})), check.ErrFailed, connector.ReasonUnauthorized)
	if strings.Contains(ce.Message, "hunter2") {
		t.Errorf("the password is in the message: %s", ce.Message)
	}
	wantKind(t, mustFail(c.Sink(ctx, check.Request{Type: "fake", Props: map[string]any{"addr": "ok", "table": "missing"}})), check.ErrFailed, connector.ReasonMissing)
	ce = wantKind(t, mustFail(c.Sink(ctx, check.Request{Type: "fake", Props: map[string]any{"mode": "z"}})), check.ErrInvalid, "")
	if len(ce.Fields) != 2 {
		t.Errorf("fields %v, want addr and mode", ce.Fields)
	}
	wantKind(t, mustFail(c.Sink(ctx, check.Request{Type: "kafka", Props: map[string]any{}})), check.ErrUnknownType, "")
	wantKind(t, mustFail(c.Sink(ctx, check.Request{Type: "plain", Props: map[string]any{}})), check.ErrUnsupported, "")
}

func mustFail(_ check.Result, err error) error { return err }

func TestTimeouts(t *testing.T) {
	c, fake := setup(check.Options{Timeout: 100 * time.Millisecond})
	fake.SetHang("hang", true)
	start := time.Now()
	wantKind(t, mustFail(c.Sink(context.Background(), check.Request{Type: "fake", Props: map[string]any{"addr": "hang"}})), check.ErrTimeout, connector.ReasonTimeout)
	if d := time.Since(start); d > time.Second {
		t.Errorf("a hung check took %v with a 100ms timeout", d)
	}
	// A connector that ignores its context: the caller still gets an
	// answer in time.
	fake.SetStall("stall", 600*time.Millisecond)
	start = time.Now()
	wantKind(t, mustFail(c.Sink(context.Background(), check.Request{Type: "fake", Props: map[string]any{"addr": "stall"}})), check.ErrTimeout, connector.ReasonTimeout)
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("a stalled check held its caller %v", d)
	}
	// The caller's own deadline is honoured too.
	c2, fake2 := setup(check.Options{Timeout: 10 * time.Second})
	fake2.SetHang("hang", true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	wantKind(t, mustFail(c2.Source(ctx, check.Request{Type: "fake", Props: map[string]any{"addr": "hang"}})), check.ErrTimeout, connector.ReasonTimeout)
	if d := time.Since(start); d > time.Second {
		t.Errorf("the caller's deadline was not honoured: %v", d)
	}
}

func TestCapInFlight(t *testing.T) {
	c, fake := setup(check.Options{Timeout: 5 * time.Second, MaxInFlight: 2})
	fake.SetHang("hang", true)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Sink(ctx, check.Request{Type: "fake", Props: map[string]any{"addr": "hang"}})
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for fake.Checks("hang") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the two checks never started")
		}
		time.Sleep(time.Millisecond)
	}
	wantKind(t, mustFail(c.Sink(context.Background(), check.Request{Type: "fake", Props: map[string]any{"addr": "ok"}})), check.ErrBusy, "")
	cancel()
	wg.Wait()
	// Slots are freed once the checks end.
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, err := c.Sink(context.Background(), check.Request{Type: "fake", Props: map[string]any{"addr": "ok"}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots never freed: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBaseMerge(t *testing.T) {
	c, fake := setup(check.Options{})
	fake.SetAuthFail("auth", true)
	base := map[string]any{"addr": "auth", "password": "real"}
	// The body's props win; a masked secret keeps the stored one, which
	// reaches the connector (the fake quotes it; the checker masks it).
	ce := wantKind(t, mustFail(c.Source(context.Background(), check.Request{Type: "fake", Base: base,
		Props: map[string]any{"password": secret.Mask, "connectionSelector": "x"}})), check.ErrFailed, connector.ReasonUnauthorized)
	if strings.Contains(ce.Message, "real") || !strings.Contains(ce.Message, secret.Mask) {
		t.Errorf("message %q", ce.Message)
	}
	// Another addr: the stored secret is not sent there, and nothing is
	// dialed, until the body gives a password of its own.
	ce = wantKind(t, mustFail(c.Source(context.Background(), check.Request{Type: "fake", Base: base, Props: map[string]any{"addr": "ok"}})), check.ErrInvalid, "")
	if len(ce.Fields) != 1 || ce.Fields[0].Field != "password" || !strings.Contains(ce.Message, "addr") {
		t.Errorf("body addr over the base: %+v", ce)
	}
	if n := fake.Checks("ok"); n != 0 {
		t.Errorf("the other addr was checked %d times with the stored secret", n)
	}
	if _, err := c.Source(context.Background(), check.Request{Type: "fake", Base: base, Props: map[string]any{"addr": "ok", "password": "mine"}}); err != nil {
		t.Errorf("body addr and password over the base: %v", err)
	}
}

// TestSecretOfAnyTypeStaysHome: a stored secret that is a number (an
// older record, or unquoted YAML) is bound to its endpoint as a string
// is: a check at another addr that names the stored connection is
// refused naming it, and nothing is dialed.
func TestSecretOfAnyTypeStaysHome(t *testing.T) {
	c, fake := setup(check.Options{})
	for name, base := range map[string]map[string]any{
		"password": {"addr": "auth", "password": json.Number("73105291")},
		"map key":  {"addr": "auth", "header": map[string]any{"Authorization": 73105291.0}},
	} {
		ce := wantKind(t, mustFail(c.Source(context.Background(), check.Request{Type: "fake", Base: base, Props: map[string]any{"addr": "ok"}})), check.ErrInvalid, "")
		if len(ce.Fields) != 1 || strings.Contains(ce.Message, "73105291") {
			t.Errorf("%s: %+v", name, ce)
		}
	}
	if n := fake.Checks("ok"); n != 0 {
		t.Errorf("the other addr was checked %d times with the stored secret", n)
	}
}

// TestOneVocabulary: a check's error has a connection.Code, as every
// other error, and matches its sentinel.
func TestOneVocabulary(t *testing.T) {
	for kind, code := range map[error]connection.Code{
		check.ErrInvalid: connection.CodeInvalidArgument, check.ErrUnknownType: connection.CodeNotFound,
		check.ErrBusy: connection.CodeResourceExhausted, check.ErrFailed: connection.CodeUnavailable,
		check.ErrTimeout: connection.CodeDeadlineExceeded, check.ErrDenied: connection.CodeInvalidArgument,
	} {
		err := error(&check.Error{Kind: kind, Message: "x"})
		if got := connection.CodeOf(err); got != code {
			t.Errorf("%v: code %s, want %s", kind, got, code)
		}
		if !errors.Is(err, kind) || !errors.Is(err, connection.ErrInvalidArgument) && code == connection.CodeInvalidArgument {
			t.Errorf("%v: does not match its sentinels", kind)
		}
	}
}

// panics is a type whose check panics, as a driver a hostile peer drove
// into a panic would.
type panics struct{ noChecks }

func (panics) CheckSink(context.Context, map[string]any) error { panic("driver bug") }

// TestPanicFailsTheCheck: a check that panics fails with an error and
// frees its slot; the process goes on.
func TestPanicFailsTheCheck(t *testing.T) {
	reg := &registry.Registry{}
	reg.Register("panics", panics{})
	c := check.New(&check.Options{Registry: reg, MaxInFlight: 1})
	for range 3 { // one slot: each must be freed
		_, err := c.Sink(context.Background(), check.Request{Type: "panics", Props: map[string]any{}})
		if err == nil || !strings.Contains(err.Error(), "panicked") {
			t.Fatalf("%v", err)
		}
	}
}
