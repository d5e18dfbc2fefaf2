package httppush_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/connector/httppush"
)

func receiver(t *testing.T, props map[string]any) *httppush.Receiver {
	t.Helper()
	m := newManager(t)
	props["addr"] = "127.0.0.1:0"
	if _, err := m.Create(context.Background(), connection.Spec{ID: "push", Type: httppush.Type, Props: props}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "push", connection.StateConnected, 5*time.Second)
	r, err := httppush.Attach(context.Background(), m, "push", "rule1/source")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// do sends one request and returns its status and Retry-After.
func do(url string) (int, string, error) {
	res, err := http.Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		return 0, "", err
	}
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Retry-After"), nil
}

type answer struct {
	code       int
	retryAfter string
	err        error
}

func doing(url string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		code, ra, err := do(url)
		ch <- answer{code, ra, err}
	}()
	return ch
}

// TestAnsweredOnceTaken: a push is answered 200 only once the rule's
// handler returned nil; 503 with Retry-After if it fails, if a Receive
// channel is not read within ackTimeout, or at once when bufferLength
// requests wait already.
func TestAnsweredOnceTaken(t *testing.T) {
	r := receiver(t, map[string]any{"ackTimeout": 300, "bufferLength": 1})
	entered, release := make(chan struct{}), make(chan struct{})
	fail := errors.New("the sink is down")
	if err := r.Handle("/h", "POST", func(ctx context.Context, m httppush.Message) error {
		entered <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return fail
		}
	}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + r.Addr()

	first := doing(base + "/h")
	<-entered
	// Held in the handler: not answered, and the one slot is taken.
	select {
	case a := <-first:
		t.Fatalf("answered %d while the rule still had the request", a.code)
	default:
	}
	if code, ra, err := do(base + "/h"); err != nil || code != 503 || ra == "" {
		t.Fatalf("a request past bufferLength: %d, Retry-After %q, %v", code, ra, err)
	}
	close(release)
	if a := <-first; a.err != nil || a.code != 200 {
		t.Fatalf("after the handler returned: %+v", a)
	}

	// A handler that fails (here: ackTimeout ends it) is a 503.
	release = make(chan struct{})
	failed := doing(base + "/h")
	<-entered
	if a := <-failed; a.code != 503 || a.retryAfter == "" {
		t.Fatalf("a failed handler: %+v", a)
	}

	// A channel nobody reads: 503 after ackTimeout, nothing acknowledged.
	ch, err := r.Receive("/c", "POST")
	if err != nil {
		t.Fatal(err)
	}
	if code, ra, err := do(base + "/c"); err != nil || code != 503 || ra == "" {
		t.Fatalf("a request no rule took: %d, Retry-After %q, %v", code, ra, err)
	}
	got := doing(base + "/c")
	if m := take(t, ch); string(m.Body) != "x" {
		t.Fatalf("body %q", m.Body)
	}
	if a := <-got; a.code != 200 {
		t.Fatalf("a request the rule took: %+v", a)
	}
}

func TestAckProps(t *testing.T) {
	m := newManager(t)
	for _, tc := range []struct {
		prop string
		v    any
	}{{"bufferLength", 0}, {"ackTimeout", 0}, {"ackTimeout", 600_001}} {
		_, err := m.Create(context.Background(), connection.Spec{ID: "bad", Type: httppush.Type, Props: map[string]any{tc.prop: tc.v}})
		if err == nil || !strings.Contains(err.Error(), tc.prop) {
			t.Errorf("%s %v: %v", tc.prop, tc.v, err)
		}
	}
}

// TestReleasedWhileWaiting: a push whose only rule is released while it
// waits is not answered 200: nobody has it.
func TestReleasedWhileWaiting(t *testing.T) {
	m := newManager(t)
	if _, err := m.Create(context.Background(), connection.Spec{ID: "push", Type: httppush.Type, Props: map[string]any{"addr": "127.0.0.1:0", "ackTimeout": 10000}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "push", connection.StateConnected, 5*time.Second)
	for _, handle := range []bool{false, true} {
		r, err := httppush.Attach(context.Background(), m, "push", "rule1/source")
		if err != nil {
			t.Fatal(err)
		}
		entered := make(chan struct{}, 1)
		if handle {
			err = r.Handle("/w", "POST", func(ctx context.Context, _ httppush.Message) error {
				entered <- struct{}{}
				<-ctx.Done() // held until the release ends it
				return ctx.Err()
			})
		} else {
			_, err = r.Receive("/w", "POST")
		}
		if err != nil {
			t.Fatal(err)
		}
		got := doing("http://" + r.Addr() + "/w")
		if handle {
			<-entered
		} else {
			connectortest.WaitActive(t, m, "push") // the request is in
		}
		m.Detach("push", "rule1/source")
		if a := <-got; a.code == 200 {
			t.Fatalf("handle=%v: answered 200 though its only rule was released while it waited", handle)
		}
	}
}
