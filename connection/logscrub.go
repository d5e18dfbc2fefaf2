package connection

import (
	"context"
	"log/slog"
)

// scrubHandler removes secrets from every message and attribute that a
// connector, or a driver it hands the logger to, logs.
type scrubHandler struct {
	h     slog.Handler
	scrub func(string) string
}

func (s scrubHandler) Enabled(ctx context.Context, l slog.Level) bool { return s.h.Enabled(ctx, l) }

func (s scrubHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, s.scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(s.attr(a))
		return true
	})
	return s.h.Handle(ctx, out)
}

func (s scrubHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	a.Key = s.scrub(a.Key)
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, s.scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		as := make([]any, len(g))
		for i, ga := range g {
			as[i] = s.attr(ga)
		}
		return slog.Group(a.Key, as...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, s.scrub(err.Error()))
		}
		return slog.String(a.Key, s.scrub(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (s scrubHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = s.attr(a)
	}
	return scrubHandler{s.h.WithAttrs(out), s.scrub}
}

func (s scrubHandler) WithGroup(name string) slog.Handler {
	return scrubHandler{s.h.WithGroup(s.scrub(name)), s.scrub}
}
