// Package httpapi serves the connection REST API on any net/http mux.
//
// # Routes
//
//	POST   /connections          create: {"id","typ","props"}; 201
//	PUT    /connections          apply a set: [{"id","typ","props"}...] (?prune=true, ?dryRun=true); 200
//	GET    /connections          list, sorted by id, in pages (?limit=, ?after=; Link rel="next"); 200
//	GET    /connections/{id}     one connection; 200, ETag
//	PUT    /connections/{id}     update; 200; If-Match honoured
//	DELETE /connections/{id}     delete; 204; If-Match honoured
//	GET    /metadata/connections the types and their property schemas
//	POST   /metadata/sinks/connection/{type}    check a sink configuration
//	POST   /metadata/sources/connection/{type}  check a source configuration
//	POST   /connections/{id}/check      check the stored connection (?role=source|sink); 200
//	POST   /connections/{id}/reconnect  close the link and dial again now; 202
//	GET    /connections/{id}/history    its last 50 status transitions; 200
//	GET    /events               Server-Sent Events of every change (?connection=ID)
//	GET    /livez                200 while the process serves
//	GET    /readyz               200 while the store answers (?connection=ID, repeatable; ?verbose)
//	GET    /openapi.json         the OpenAPI 3.1 document of these routes and the registered types
//	GET    /ui/                  the management page (package ui), driven by the routes above
//
// # Events
//
// GET /events is a text/event-stream. Each event has "id:" its sequence
// number, "event:" its kind (created, updated, deleted, status, attached,
// detached; lagged and reset) and "data:" the connection.Event as JSON:
//
//	id: 42
//	event: status
//	data: {"seq":42,"kind":"status","id":"m1","typ":"mqtt","time":"...","status":{"status":"disconnected","err":"...","statusSince":"..."}}
//
// A client that reconnects with Last-Event-ID gets the events after it,
// from a window of at least the last 1,024; from outside the window (or
// after a restart) its first event is reset: list the connections again.
// A client that reads too slowly gets lagged, and should list again too.
// A ": keep-alive" comment is sent when the stream is idle (Options.KeepAlive),
// and CloseStreams ends every stream cleanly at shutdown.
//
// # Health
//
// /livez and /readyz answer {"status":"ok"} or, with 503,
// {"status":"unavailable","error":"..."}; ?verbose adds "checks", each
// {"name","ok","error"}.
//
// Every check answer, passed or failed, has "steps": the stages the check
// went through, each {"name","ok","ms","error"} (resolve, connect, tls,
// handshake, auth, open, table, query), the last failed one saying where
// it failed. POST /connections/{id}/check checks a stored connection with
// its real secrets and its own endpoint; its optional body adds the
// sink's or source's own props (a table, a query).
//
// A check's body holds the flat props of the source or sink, and may name a
// stored connection with "connectionSelector": its props, real secrets
// included, are laid under the body's. A check answers 200
// {"ok":true,"latencyMs":N,"steps":[...]}; 400 for a bad configuration, 404 for an unknown
// type, 502 when the peer is unreachable, refuses the connection or the
// credentials, or lacks a table or column, 504 when it does not answer in
// time, and 503 resource_exhausted (with Retry-After) past the cap of checks
// in flight. A failed check's body has a "reason": refused, unreachable,
// unauthorized, missing or timeout; or denied (400) when the checker's dial
// policy forbids the address.
//
// Every body is JSON; errors are problems (RFC 9457,
// application/problem+json) with connkit's members:
//
//	{"type": "urn:connkit:problem:invalid_argument", "title": "Invalid argument", "status": 400,
//	 "detail": "...", "code": "invalid_argument", "error": "...", "fields": [{"field": "server", "message": "..."}]}
//
// The code is one of connection.Code, mapped to a status: invalid_argument
// 400, not_found 404, already_exists and in_use 409 (in_use lists "refs"),
// version_mismatch 412, body_too_large 413, unavailable 502,
// deadline_exceeded 504, internal 500. A wrong method gets 405
// method_not_allowed with an Allow header.
//
// A request that changes something (not GET, HEAD or OPTIONS) and that a
// browser sent from a page of another origin gets 403 cross_origin
// (Options.CrossOrigin): a site an operator visits cannot use the
// operator's browser to drive the API. Programs that are not browsers
// send no Sec-Fetch-Site or Origin header and are not affected.
//
// The ETag of a connection is its incarnation and version, a strong
// entity tag such as "1042-3": a tag never repeats for one id, not even
// after a delete and a create again, so that no If-Match read before a
// delete matches the connection created after it. If-Match is honoured as
// RFC 9110 says: * or no header means any version; a list of tags matches
// if one of its strong tags is the connection's; a well-formed tag that
// does not match (a weak one, or a bare version such as "3" as earlier
// releases gave, included) is 412; only a malformed header is 400. The
// comparison is made against the store, not this instance's memory.
//
// The handler does no authentication: mount it behind your own middleware,
// under any prefix with http.StripPrefix.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
)

// Options configure the handler. A nil *Options means all defaults.
type Options struct {
	// MaxBodyBytes caps a request body; default 1 MiB. Larger bodies get
	// 413.
	MaxBodyBytes int64
	// Logger receives internal errors; nil means slog.Default().
	Logger *slog.Logger
	// Checker runs the connectivity checks; nil means one with the
	// defaults of check.New over the Manager's registry.
	Checker *check.Checker
	// MaxPageSize caps the connections of one GET /connections, and is
	// its default page; default 1,000.
	MaxPageSize int
	// KeepAlive is how often an idle GET /events stream gets a comment,
	// so that proxies do not cut it; default 15s.
	KeepAlive time.Duration
	// ReadyTimeout bounds the store's answer to GET /readyz; default 2s.
	ReadyTimeout time.Duration
	// MaxBodyBytesInFlight bounds the bytes of the request bodies being
	// read and decoded at once (each counted at its Content-Length, or at
	// the route's limit when it has none), so that many large bodies at
	// once cannot take the host's memory: a body decoded costs up to 26
	// times its size. Past it a request gets 503 resource_exhausted with
	// Retry-After. Default 4 MiB: four sets of the largest size at once, or
	// thousands of small bodies.
	MaxBodyBytesInFlight int64
	// CrossOrigin refuses (403, cross_origin) the requests that change
	// something and that a browser sent from a page of another origin,
	// so that a site an operator visits cannot drive the API through the
	// operator's browser. Clients that are not browsers are not
	// affected. Nil means http.NewCrossOriginProtection(); add the
	// origins of other pages that call the API with AddTrustedOrigin.
	CrossOrigin *http.CrossOriginProtection
}

// Handler serves the REST API of a Manager. It is an http.Handler.
type Handler struct {
	m            *connection.Manager
	checker      *check.Checker
	maxBody      int64
	maxPage      int
	log          *slog.Logger
	mux          *http.ServeMux
	keepAlive    time.Duration
	readyTimeout time.Duration
	streams      streams
	crossOrigin  *http.CrossOriginProtection
	inFlight     budget // bytes of request bodies being read
}

// budget is a count of bytes that may be taken up to its most.
type budget struct {
	mu        sync.Mutex
	most, now int64
}

// take takes n, if there is room.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.now > 0 && b.now+n > b.most {
		return false // one body always fits, however large
	}
	b.now += n
	return true
}

func (b *budget) give(n int64) {
	b.mu.Lock()
	b.now -= n
	b.mu.Unlock()
}

// New returns a handler serving the REST API of m.
func New(m *connection.Manager, opts *Options) *Handler {
	if opts == nil {
		opts = &Options{}
	}
	h := &Handler{m: m, checker: opts.Checker, maxBody: opts.MaxBodyBytes, log: opts.Logger, mux: http.NewServeMux(),
		keepAlive: opts.KeepAlive, readyTimeout: opts.ReadyTimeout, streams: streams{done: make(chan struct{})},
		crossOrigin: opts.CrossOrigin}
	if h.crossOrigin == nil {
		h.crossOrigin = http.NewCrossOriginProtection()
	}
	if h.keepAlive <= 0 {
		h.keepAlive = 15 * time.Second
	}
	if h.readyTimeout <= 0 {
		h.readyTimeout = 2 * time.Second
	}
	if h.checker == nil {
		h.checker = check.New(&check.Options{Registry: m.Registry(), Policy: m.Policy()})
	}
	if h.maxBody <= 0 {
		h.maxBody = 1 << 20
	}
	if h.inFlight.most = opts.MaxBodyBytesInFlight; h.inFlight.most <= 0 {
		h.inFlight.most = 4 << 20
	}
	if h.maxPage = opts.MaxPageSize; h.maxPage <= 0 {
		h.maxPage = 1000
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.mux.Handle("/connections", methods{"GET": h.list, "POST": h.create, "PUT": h.apply})
	h.mux.Handle("/connections/{id}", methods{"GET": h.get, "PUT": h.update, "DELETE": h.delete})
	h.mux.Handle("/connections/{id}/history", methods{"GET": h.history})
	h.mux.Handle("/connections/{id}/reconnect", methods{"POST": h.reconnect})
	h.mux.Handle("/connections/{id}/check", methods{"POST": h.checkStored})
	h.mux.Handle("/metadata/connections", methods{"GET": h.types})
	h.mux.Handle("/metadata/sinks/connection/{type}", methods{"POST": h.check("sink")})
	h.mux.Handle("/metadata/sources/connection/{type}", methods{"POST": h.check("source")})
	h.mux.Handle("/events", methods{"GET": h.events})
	h.mux.Handle("/livez", methods{"GET": h.livez})
	h.mux.Handle("/readyz", methods{"GET": h.readyz})
	h.mux.Handle("/openapi.json", methods{"GET": h.openAPI})
	h.mux.Handle("/ui/", methods{"GET": h.page, "HEAD": h.page})
	h.mux.Handle("/ui", methods{"GET": func(w http.ResponseWriter, r *http.Request) {
		// Relative, so that it holds under any prefix the API is mounted at.
		w.Header().Set("Location", "ui/")
		w.WriteHeader(http.StatusMovedPermanently)
	}})
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errBody{Code: "not_found", Error: fmt.Sprintf("no route %s %s; see the package documentation for the routes", connector.Short(r.Method), quote(r.URL.Path))})
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("httpapi: panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p)
			writeError(w, errBody{Code: string(connection.CodeInternal), Error: "internal error; the server log has the details"})
		}
	}()
	// The mux would answer a path with . or .. segments or doubled slashes
	// with an HTML redirect; every answer here is JSON.
	if p := r.URL.Path; p != "" {
		if c := path.Clean(p); c != p && c+"/" != p {
			writeError(w, errBody{Code: string(connection.CodeNotFound),
				Error: fmt.Sprintf("no route %s %s; the path is not in canonical form", connector.Short(r.Method), quote(p))})
			return
		}
	}
	if err := h.crossOrigin.Check(r); err != nil {
		writeError(w, errBody{Code: string(connection.CodeCrossOrigin),
			Error: fmt.Sprintf("%s %s from a page of another origin: refused (%v); use the page at /ui/ or a program; "+
				"if this is that page behind a proxy, have the proxy pass the Host header on, or trust the page's origin (Options.CrossOrigin)", connector.Short(r.Method), quote(r.URL.Path), err)})
		return
	}
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		n := r.ContentLength
		if n < 0 || n > h.maxBody {
			n = h.maxBody // read up to the limit at most
		}
		if !h.inFlight.take(n) {
			writeError(w, errBody{Code: string(connection.CodeResourceExhausted),
				Error: fmt.Sprintf("too many request bodies are being read (%d bytes at most at once); retry in a moment", h.inFlight.most)})
			return
		}
		defer h.inFlight.give(n)
	}
	h.mux.ServeHTTP(w, r)
}

// methods dispatches by method, answering 405 in JSON for the others.
type methods map[string]func(http.ResponseWriter, *http.Request)

func (ms methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f, ok := ms[r.Method]; ok {
		f(w, r)
		return
	}
	allow := make([]string, 0, len(ms))
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		if _, ok := ms[m]; ok {
			allow = append(allow, m)
		}
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, errBody{Code: "method_not_allowed",
		Error: fmt.Sprintf("%s is not allowed on %s; use %s", connector.Short(r.Method), quote(r.URL.Path), strings.Join(allow, ", "))})
}

// errBody is every error's body: a problem (RFC 9457, served as
// application/problem+json) with connkit's members beside the standard
// ones: code, error (the detail, for clients of before), fields, refs,
// reason and steps.
type errBody struct {
	Type   string                 `json:"type"`
	Title  string                 `json:"title"`
	Status int                    `json:"status"`
	Detail string                 `json:"detail"`
	Code   string                 `json:"code"`
	Error  string                 `json:"error"`
	Fields []connector.FieldError `json:"fields,omitempty"`
	Refs   []string               `json:"refs,omitempty"`
	Reason string                 `json:"reason,omitempty"`
	Steps  []connector.Step       `json:"steps,omitempty"`
}

// problems is the one table from an error's code to its HTTP status and
// title.
var problems = map[connection.Code]struct {
	status int
	title  string
}{
	connection.CodeInvalidArgument:   {http.StatusBadRequest, "Invalid argument"},
	connection.CodeNotFound:          {http.StatusNotFound, "Not found"},
	connection.CodeAlreadyExists:     {http.StatusConflict, "Already exists"},
	connection.CodeInUse:             {http.StatusConflict, "In use"},
	connection.CodeVersionMismatch:   {http.StatusPreconditionFailed, "Version mismatch"},
	connection.CodeLimitExceeded:     {http.StatusConflict, "Limit exceeded"},
	connection.CodeUnavailable:       {http.StatusBadGateway, "Unavailable"},
	connection.CodeDeadlineExceeded:  {http.StatusGatewayTimeout, "Deadline exceeded"},
	connection.CodeInternal:          {http.StatusInternalServerError, "Internal error"},
	connection.CodeResourceExhausted: {http.StatusServiceUnavailable, "Resource exhausted"},
	connection.CodeBodyTooLarge:      {http.StatusRequestEntityTooLarge, "Body too large"},
	connection.CodeMethodNotAllowed:  {http.StatusMethodNotAllowed, "Method not allowed"},
	connection.CodeCrossOrigin:       {http.StatusForbidden, "Cross-origin request"},
}

// ProblemType is the stable URI of the problem type of code, the "type"
// of an error body.
func ProblemType(code connection.Code) string { return "urn:connkit:problem:" + string(code) }

// fail writes err as the error body of its code.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := connection.CodeOf(err)
	body := errBody{Error: err.Error(), Code: string(code)}
	var ce *connection.Error
	if errors.As(err, &ce) {
		body.Fields, body.Refs = ce.Fields, ce.Refs
	}
	if code == connection.CodeInternal || problems[code].status == 0 {
		h.log.Error("httpapi: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, body)
}

// writeError writes body as a problem, with the status of its code.
func writeError(w http.ResponseWriter, body errBody) {
	p, ok := problems[connection.Code(body.Code)]
	if !ok {
		body.Code, p = string(connection.CodeInternal), problems[connection.CodeInternal]
	}
	bound(&body)
	body.Type, body.Title, body.Status, body.Detail = ProblemType(connection.Code(body.Code)), p.title, p.status, body.Error
	if body.Code == string(connection.CodeResourceExhausted) {
		w.Header().Set("Retry-After", "1")
	}
	writeBody(w, p.status, "application/problem+json", body)
}

// Bounds of an error body, whatever went wrong and whatever a peer said:
// every quote of an input is 64 bytes at most already, these keep the
// whole answer small.
const (
	maxDetail       = 2048
	maxFieldMessage = 512
)

// bound caps the texts and lists of an error body.
func bound(b *errBody) {
	b.Error = connector.Truncate(b.Error, maxDetail)
	if n := len(b.Fields); n > connector.MaxFieldErrors+1 {
		b.Fields = append(b.Fields[:connector.MaxFieldErrors:connector.MaxFieldErrors],
			connector.FieldError{Field: "props", Message: fmt.Sprintf("%d more errors", n-connector.MaxFieldErrors)})
	}
	for i, f := range b.Fields {
		b.Fields[i] = connector.FieldError{Field: connector.Truncate(f.Field, 128), Message: connector.Truncate(f.Message, maxFieldMessage)}
	}
	for i := range b.Steps {
		b.Steps[i].Error = connector.Truncate(b.Steps[i].Error, maxFieldMessage)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // JSON for programs: a <field> reads as written
	if err := enc.Encode(v); err != nil {
		status, contentType = http.StatusInternalServerError, "application/problem+json"
		buf.Reset()
		fmt.Fprintf(&buf, `{"type":%q,"title":"Internal error","status":500,"detail":"encoding the response failed","code":"internal","error":"encoding the response failed"}`+"\n", ProblemType(connection.CodeInternal))
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func writeInfo(w http.ResponseWriter, status int, in connection.Info) {
	w.Header().Set("ETag", etag(in.Tag()))
	writeJSON(w, status, in)
}

func etag(t connection.Tag) string {
	return `"` + strconv.FormatInt(t.Incarnation, 10) + "-" + strconv.FormatInt(t.Version, 10) + `"`
}

// parseTag reads the opaque part of an ETag of ours ("1042-3").
func parseTag(s string) (connection.Tag, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return connection.Tag{}, false
	}
	inc, err1 := strconv.ParseInt(a, 10, 64)
	v, err2 := strconv.ParseInt(b, 10, 64)
	t := connection.Tag{Incarnation: inc, Version: v}
	// 0 is a damaged record's version; the canonical form only, so that
	// one tag has one spelling.
	return t, err1 == nil && err2 == nil && inc >= 0 && v >= 0 && etag(t) == `"`+s+`"`
}

// precondition is what If-Match asks for, as RFC 9110 defines it: any
// version (no header, or *), or one of the Tags its strong entity tags
// name. A weak tag, or a tag that is no ETag of ours, never matches.
type precondition struct {
	any  bool
	tags []connection.Tag
}

// ifMatch parses If-Match; only a malformed header is an error.
func ifMatch(r *http.Request) (precondition, error) {
	vals := r.Header.Values("If-Match")
	if len(vals) == 0 {
		return precondition{any: true}, nil
	}
	field := strings.Join(vals, ",")
	if strings.TrimSpace(field) == "*" {
		return precondition{any: true}, nil
	}
	var pc precondition
	rest, n := field, 0
	for {
		rest = strings.TrimLeft(rest, " \t,")
		if rest == "" {
			break
		}
		weak := strings.HasPrefix(rest, "W/")
		if weak {
			rest = rest[2:]
		}
		tag, after, ok := opaqueTag(rest)
		if !ok {
			return pc, &connection.Error{Code: connection.CodeInvalidArgument,
				Fields:  connector.FieldErrors{{Field: "If-Match", Message: "not an entity tag list; give the ETag returned, such as \"1042-3\""}},
				Message: fmt.Sprintf("If-Match %s is malformed; give the ETag returned, such as \"1042-3\"", quote(field))}
		}
		n++
		rest = strings.TrimLeft(after, " \t")
		if rest != "" && rest[0] != ',' {
			return pc, &connection.Error{Code: connection.CodeInvalidArgument,
				Fields:  connector.FieldErrors{{Field: "If-Match", Message: "entity tags must be separated by commas"}},
				Message: fmt.Sprintf("If-Match %s is malformed; give the ETag returned, such as \"1042-3\"", quote(field))}
		}
		if t, ok := parseTag(tag); !weak && ok {
			pc.tags = append(pc.tags, t)
		}
	}
	if n == 0 {
		return pc, &connection.Error{Code: connection.CodeInvalidArgument,
			Fields:  connector.FieldErrors{{Field: "If-Match", Message: "empty; give the ETag returned, such as \"1042-3\", or leave it out"}},
			Message: "If-Match is empty; give the ETag returned, such as \"1042-3\", or leave the header out"}
	}
	return pc, nil
}

// opaqueTag reads a quoted entity tag from the start of s.
func opaqueTag(s string) (tag, rest string, ok bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", "", false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return s[1:i], s[i+1:], true
		case c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80:
		default:
			return "", "", false
		}
	}
	return "", "", false
}

// tag turns the precondition into the Tag a write must find (the zero
// Tag: any), or the 412 of a precondition that no Tag can meet. One tag
// goes to the write as it is, which compares it with the store; of
// several, the one the store holds now is picked.
func (h *Handler) tag(ctx context.Context, id string, pc precondition) (connection.Tag, error) {
	if pc.any {
		return connection.Tag{}, nil
	}
	if len(pc.tags) == 0 {
		if _, err := h.m.Get(id); err != nil {
			return connection.Tag{}, err // not found is said first
		}
		return connection.Tag{}, &connection.Error{Code: connection.CodeVersionMismatch, ID: id,
			Message: fmt.Sprintf("If-Match names no ETag of connection %s (a weak tag never matches, nor a bare version); read it again and give its ETag", quote(id))}
	}
	// The zero Tag ("0-0": a damaged record's, from before incarnations)
	// would mean any state to the Manager: it is compared here.
	if len(pc.tags) == 1 && pc.tags[0] != (connection.Tag{}) {
		return pc.tags[0], nil
	}
	in, err := h.m.Fresh(ctx, id)
	if err != nil {
		return connection.Tag{}, err
	}
	if slices.Contains(pc.tags, in.Tag()) {
		return in.Tag(), nil // the write still compares it, atomically
	}
	return connection.Tag{}, &connection.Error{Code: connection.CodeVersionMismatch, ID: id,
		Message: fmt.Sprintf("connection %s is at version %d, which If-Match does not name; read it again and retry", quote(id), in.Version)}
}

// body reads the request body, up to MaxBodyBytes, and parses it with
// parse (one of connection.ParseSpec, ParseSpecs and ParseProps: the one
// decoder of every body, linear in cost and bounded in depth). On failure
// it answers and returns false.
func body[T any](h *Handler, w http.ResponseWriter, r *http.Request, parse func([]byte) (T, error)) (T, bool) {
	return bodyUpTo(h, w, r, h.maxBody, parse)
}

// oneBody is body for a route that takes one connection's props (a
// create, an update, a check): no larger than those may be, with room
// for the rest, so that what it costs is bounded by the props' limit.
func oneBody[T any](h *Handler, w http.ResponseWriter, r *http.Request, maxProps int, parse func([]byte) (T, error)) (T, bool) {
	return bodyUpTo(h, w, r, min(h.maxBody, int64(maxProps)+4096), parse)
}

func bodyUpTo[T any](h *Handler, w http.ResponseWriter, r *http.Request, limit int64, parse func([]byte) (T, error)) (T, bool) {
	var zero T
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf.Grow(int(r.ContentLength) + bytes.MinRead) // read once, not grown by doubling
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	data := buf.Bytes()
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		msg := fmt.Sprintf("request body is over %d bytes; send less", limit)
		if limit < h.maxBody {
			msg = fmt.Sprintf("request body is over %d bytes, more than the props of one connection may take; send less", limit)
		}
		writeError(w, errBody{Code: string(connection.CodeBodyTooLarge), Error: msg})
		return zero, false
	case err != nil:
		h.fail(w, r, &connection.Error{Code: connection.CodeInvalidArgument, Message: "the request body could not be read; send it again"})
		return zero, false
	}
	v, err := parse(data)
	if err != nil {
		h.fail(w, r, err)
		return zero, false
	}
	return v, true
}

// list answers a page of connections: ?limit= (1 to MaxPageSize, default
// MaxPageSize) after ?after=, the id that ends the previous page. A Link
// header with rel="next" says where the next page is, if any.
func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := h.maxPage
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > h.maxPage {
			h.fail(w, r, &connection.Error{Code: connection.CodeInvalidArgument,
				Fields:  connector.FieldErrors{{Field: "limit", Message: fmt.Sprintf("give 1 to %d", h.maxPage)}},
				Message: fmt.Sprintf("limit %s: give 1 to %d", quote(s), h.maxPage)})
			return
		}
		limit = n
	}
	body, last, more := h.m.AppendPageJSON(make([]byte, 0, 4096), q.Get("after"), limit)
	if more {
		next := url.Values{"after": {last}, "limit": {strconv.Itoa(limit)}}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	in, err := h.m.Get(r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeInfo(w, http.StatusOK, in)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	spec, ok := oneBody(h, w, r, h.m.MaxPropsBytes(), connection.ParseSpec)
	if !ok {
		return
	}
	in, err := h.m.Create(r.Context(), spec)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeInfo(w, http.StatusCreated, in)
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	pc, err := ifMatch(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	spec, ok := oneBody(h, w, r, h.m.MaxPropsBytes(), connection.ParseSpec)
	if !ok {
		return
	}
	if spec.ID != "" && spec.ID != id {
		h.fail(w, r, &connection.Error{Code: connection.CodeInvalidArgument, ID: id,
			Fields:  connector.FieldErrors{{Field: "id", Message: fmt.Sprintf("%s differs from the id %s in the URL; leave it empty or make them equal", quote(spec.ID), quote(id))}},
			Message: fmt.Sprintf("the body's id %s differs from the id %s in the URL; an id cannot be changed", quote(spec.ID), quote(id))})
		return
	}
	at, err := h.tag(r.Context(), id, pc)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	spec.ID = id
	in, err := h.m.Update(r.Context(), spec, at)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeInfo(w, http.StatusOK, in)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	pc, err := ifMatch(r)
	var at connection.Tag
	if err == nil {
		at, err = h.tag(r.Context(), id, pc)
	}
	if err == nil {
		err = h.m.Delete(r.Context(), id, at)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) types(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.m.Types())
}

// quote quotes at most 64 bytes of s, an input, for a message.
func quote(s string) string { return strconv.Quote(connector.Short(s)) }
