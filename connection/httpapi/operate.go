package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
)

// streams ends the event streams when the server shuts down.
type streams struct {
	once sync.Once
	done chan struct{}
}

func (s *streams) close() { s.once.Do(func() { close(s.done) }) }

// CloseStreams ends every GET /events stream, cleanly, and every later one
// at once. http.Server.Shutdown waits for streams that never go idle:
// register it with http.Server.RegisterOnShutdown.
func (h *Handler) CloseStreams() { h.streams.close() }

type checkResult struct {
	OK        bool             `json:"ok"`
	LatencyMs int64            `json:"latencyMs"`
	Steps     []connector.Step `json:"steps"`
}

// check serves a check route of role sink or source.
func (h *Handler) check(role string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		props, ok := oneBody(h, w, r, h.checker.MaxPropsBytes(), connection.ParseProps)
		if !ok {
			return
		}
		req := check.Request{Type: r.PathValue("type"), Props: props}
		if sel, ok := props["connectionSelector"]; ok {
			id, _ := sel.(string)
			spec, err := h.m.Resolve(id)
			if err != nil {
				h.fail(w, r, selectorError(id, err))
				return
			}
			if spec.Type != req.Type {
				h.fail(w, r, selectorError(id, fmt.Errorf("connection %s is of type %q, not %s", quote(id), spec.Type, quote(req.Type))))
				return
			}
			req.Base = spec.Props
		}
		h.runCheck(w, r, role, req)
	}
}

// checkStored checks a stored connection as it is, with its real secrets:
// POST /connections/{id}/check[?role=sink|source], with an optional body
// of the sink's or source's own props (a table, a query).
func (h *Handler) checkStored(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	spec, err := h.m.Resolve(id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	props := map[string]any{}
	// No body, or an empty one however it is sent, checks the connection
	// alone.
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); err == nil {
		r.Body = io.NopCloser(br)
		var ok bool
		if props, ok = oneBody(h, w, r, h.checker.MaxPropsBytes(), connection.ParseProps); !ok {
			return
		}
	}
	if props == nil {
		props = map[string]any{}
	}
	role := r.URL.Query().Get("role")
	if role == "" {
		// A source's check needs no props of its own (a sink's may: a
		// table), so it checks the connection alone.
		role = "source"
		if t, ok := h.m.Registry().Lookup(spec.Type); ok {
			if _, src := t.(connector.SourceChecker); !src {
				role = "sink"
			}
		}
	}
	if role != "sink" && role != "source" {
		h.fail(w, r, &connection.Error{Code: connection.CodeInvalidArgument, ID: id,
			Fields:  connector.FieldErrors{{Field: "role", Message: "give sink or source"}},
			Message: fmt.Sprintf("role %q: give sink or source", connector.Short(role))})
		return
	}
	h.runCheck(w, r, role, check.Request{Type: spec.Type, Props: props, Base: spec.Props})
}

func (h *Handler) runCheck(w http.ResponseWriter, r *http.Request, role string, req check.Request) {
	run := h.checker.Sink
	if role == "source" {
		run = h.checker.Source
	}
	typ := req.Type
	if _, ok := h.m.Registry().Lookup(typ); !ok {
		typ = "unknown" // a label of any path a client sends would be unbounded
	}
	done := h.m.CheckStarted(typ, role)
	res, err := run(r.Context(), req)
	if err == nil {
		done(res.Took, "ok")
		writeJSON(w, http.StatusOK, checkResult{OK: true, LatencyMs: res.Took.Milliseconds(), Steps: res.Steps})
		return
	}
	var ce *check.Error
	if !errors.As(err, &ce) {
		done(res.Took, "error")
		h.fail(w, r, err)
		return
	}
	body := errBody{Error: ce.Message, Code: string(ce.ErrorCode()), Fields: ce.Fields, Reason: ce.Reason, Steps: res.Steps}
	result := ce.Reason
	switch {
	case result != "":
	case errors.Is(err, check.ErrUnknownType):
		result = "unknown_type"
	case errors.Is(err, check.ErrBusy):
		result = "busy"
	case errors.Is(err, check.ErrInvalid), errors.Is(err, check.ErrUnsupported):
		result = "invalid"
	default:
		result = "failed"
	}
	done(res.Took, result)
	writeError(w, body)
}

// selectorError reports a connectionSelector that names no usable
// connection as a bad field of the request.
func selectorError(id string, err error) error {
	return &connection.Error{Code: connection.CodeInvalidArgument, ID: id, Err: err,
		Fields:  connector.FieldErrors{{Field: "connectionSelector", Message: err.Error()}},
		Message: "connectionSelector: " + err.Error()}
}

// reconnect serves POST /connections/{id}/reconnect: 202 and the
// connection as it is before the redial.
func (h *Handler) reconnect(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.m.Reconnect(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	in, err := h.m.Get(id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, in)
}

// transition is one entry of a connection's history.
type transition struct {
	State     connection.State `json:"state"`
	Err       string           `json:"err"`
	Permanent bool             `json:"permanent,omitempty"`
	Since     time.Time        `json:"since"`
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request) {
	hs, err := h.m.History(r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]transition, len(hs))
	for i, s := range hs {
		out[i] = transition{State: s.State, Err: s.Err, Permanent: s.Permanent, Since: s.Since}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) livez(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, health{Status: "ok"})
}

type health struct {
	Status string        `json:"status"`
	Error  string        `json:"error,omitempty"`
	Checks []healthCheck `json:"checks,omitempty"`
}

type healthCheck struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// maxReadyConnections bounds the connections one GET /readyz names, so
// that its answer stays small whatever the query.
const maxReadyConnections = 100

// readyz answers 200 while the store answers (and the connections named
// by ?connection= are connected), 503 otherwise; ?verbose lists each
// check.
func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if n := len(q["connection"]); n > maxReadyConnections {
		h.fail(w, r, &connection.Error{Code: connection.CodeInvalidArgument,
			Fields:  connector.FieldErrors{{Field: "connection", Message: fmt.Sprintf("%d given; name at most %d", n, maxReadyConnections)}},
			Message: fmt.Sprintf("readyz: %d connections named; name at most %d", n, maxReadyConnections)})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.readyTimeout)
	defer cancel()
	var checks []healthCheck
	err := h.m.Ready(ctx)
	checks = append(checks, healthCheck{Name: "store", OK: err == nil, Error: errString(err)})
	for _, id := range q["connection"] {
		c := healthCheck{Name: "connection:" + connector.Short(id)}
		in, err := h.m.Get(id)
		switch {
		case err != nil:
			c.Error = err.Error()
		case in.State != connection.StateConnected:
			c.Error = string(in.State)
			if in.Err != "" {
				c.Error += ": " + in.Err
			}
		default:
			c.OK = true
		}
		checks = append(checks, c)
	}
	body, status := health{Status: "ok"}, http.StatusOK
	for _, c := range checks {
		if !c.OK {
			body.Status, status = "unavailable", http.StatusServiceUnavailable
			if body.Error == "" {
				body.Error = c.Name + ": " + c.Error
			}
		}
	}
	if q.Has("verbose") {
		body.Checks = checks
	}
	writeJSON(w, status, body)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// events serves GET /events as Server-Sent Events.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := connection.SubscribeOptions{Connection: q.Get("connection")}
	if o.Connection != "" && !connection.ValidID(o.Connection) {
		h.fail(w, r, &connection.Error{Code: connection.CodeInvalidArgument,
			Fields:  connector.FieldErrors{{Field: "connection", Message: "not a connection id"}},
			Message: fmt.Sprintf("connection %q: not a connection id", connector.Short(o.Connection))})
		return
	}
	if s := r.Header.Get("Last-Event-ID"); s != "" {
		last, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			h.fail(w, r, &connection.Error{Code: connection.CodeInvalidArgument,
				Fields:  connector.FieldErrors{{Field: "Last-Event-ID", Message: "give the id of an event, a number"}},
				Message: fmt.Sprintf("Last-Event-ID %q: give the id of an event, a number", connector.Short(s))})
			return
		}
		o.From = last + 1
	}
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	evs := h.m.Subscribe(ctx, o)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	// A server's ReadTimeout would cut the stream (net/http cancels the
	// request when its read deadline passes); a write deadline per write
	// instead ends a stream whose client stopped reading.
	rc.SetReadDeadline(time.Time{})
	deadline := func() { rc.SetWriteDeadline(time.Now().Add(h.keepAlive + 10*time.Second)) }
	deadline()
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n: connected\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	// At shutdown a write stuck on a client that stopped reading ends at
	// once, not at its deadline.
	go func() {
		select {
		case <-h.streams.done:
			rc.SetWriteDeadline(time.Now())
		case <-ctx.Done():
		}
	}()
	tick := time.NewTicker(h.keepAlive)
	defer tick.Stop()
	buf := make([]byte, 0, 512)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return // the Manager closed
			}
			// The events already waiting (a burst: a broker down drops
			// every connection on it) go out in the same write and
			// flush; one flush each would make the reader lag.
			buf = buf[:0]
			closed := false
			for more := true; more; {
				data, err := json.Marshal(ev)
				if err != nil {
					return
				}
				buf = append(buf, "id: "...)
				buf = strconv.AppendUint(buf, ev.Seq, 10)
				buf = append(buf, "\nevent: "...)
				buf = append(buf, ev.Kind...)
				buf = append(buf, "\ndata: "...)
				buf = append(buf, data...)
				buf = append(buf, "\n\n"...)
				if len(buf) >= 64<<10 {
					break
				}
				select {
				case ev, more = <-evs:
					closed = !more
				default:
					more = false
				}
			}
			deadline()
			if _, err := w.Write(buf); err != nil || closed {
				rc.Flush()
				return
			}
		case <-tick.C:
			deadline()
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case <-h.streams.done:
			return
		case <-ctx.Done():
			return
		}
		deadline()
		if rc.Flush() != nil {
			return
		}
	}
}

// apply serves PUT /connections: the stored set is made to match the
// body's array (?prune=true deletes the others; ?dryRun=true changes
// nothing), and the answer says what happened to each connection.
func (h *Handler) apply(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var opts connection.ApplyOptions
	for name, dst := range map[string]*bool{"prune": &opts.Prune, "dryRun": &opts.DryRun} {
		if s := q.Get(name); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				h.fail(w, r, &connection.Error{Code: connection.CodeInvalidArgument,
					Fields:  connector.FieldErrors{{Field: name, Message: "give true or false"}},
					Message: fmt.Sprintf("%s %q: give true or false", name, connector.Short(s))})
				return
			}
			*dst = b
		}
	}
	specs, ok := body(h, w, r, connection.ParseSpecs)
	if !ok {
		return
	}
	res, err := h.m.Apply(r.Context(), specs, &opts)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
