package connection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/store"
)

// ApplyOptions tune Apply. A nil *ApplyOptions means the zero value.
type ApplyOptions struct {
	// Prune deletes the stored connections the set does not name.
	Prune bool
	// DryRun answers the plan and changes nothing.
	DryRun bool
}

// Action is what Apply did, or would do, to one connection.
type Action string

// The actions of Apply.
const (
	ActionCreate    Action = "create"
	ActionUpdate    Action = "update"
	ActionUnchanged Action = "unchanged"
	ActionDelete    Action = "delete"
	// ActionRefused: the change was refused (Err says why: refs hold the
	// connection, or the store failed); the connection is as it was.
	ActionRefused Action = "refused"
)

// Applied is the outcome of Apply for one connection.
type Applied struct {
	ID     string `json:"id"`
	Action Action `json:"action"`
	// Version is the stored version after Apply (before, for a dry run;
	// 0 for a connection that is or would be deleted or is not created).
	Version int64 `json:"version,omitempty"`
	// Err is why an action was refused.
	Err error `json:"-"`
	// Refs are the refs that hold a refused connection.
	Refs []string `json:"refs,omitempty"`
}

// MarshalJSON adds "error", the text of Err.
func (a Applied) MarshalJSON() ([]byte, error) {
	type plain Applied
	v := struct {
		plain
		Error string `json:"error,omitempty"`
	}{plain: plain(a)}
	if a.Err != nil {
		v.Error = a.Err.Error()
	}
	return json.Marshal(v)
}

// Apply makes the stored connections match specs: it creates those that
// are missing, updates those that differ, and leaves equal ones untouched
// (same version, no redial). With Prune it deletes the others. Props are
// compared as they would be stored: a secret sent as the mask keeps the
// stored one, and is equal to it.
//
// Every spec is validated first: if one is invalid (or two share an id),
// Apply returns an invalid_argument *Error whose fields name the entry,
// as "[2].server", and changes nothing. Past that each connection is
// applied on its own: one that refs hold, or whose write fails, is
// refused with the reason and the rest still apply. The result has one
// entry per spec, in order, then one per pruned connection, by id.
func (m *Manager) Apply(ctx context.Context, specs []Spec, opts *ApplyOptions) ([]Applied, error) {
	if opts == nil {
		opts = &ApplyOptions{}
	}
	type planned struct {
		spec   Spec
		action Action
		tag    Tag
	}
	if len(specs) > m.maxConns {
		return nil, &Error{Code: CodeInvalidArgument, Fields: connector.FieldErrors{{Field: "connections", Message: fmt.Sprintf("%d entries; give at most %d", len(specs), m.maxConns)}},
			Message: fmt.Sprintf("invalid connection set, nothing applied: %d entries, more than the %d connections allowed", len(specs), m.maxConns)}
	}
	// Unchanged is a decision: made against the store, not memory.
	if err := m.freshAll(ctx); err != nil {
		return nil, err
	}
	plan := make([]planned, len(specs))
	var bad connector.FieldErrors
	seen := make(map[string]int, len(specs))
	unchecked := 0
	for i, spec := range specs {
		plan[i].spec = spec
		entry := fmt.Sprintf("[%d]", i)
		if len(bad) >= connector.MaxFieldErrors {
			// Nothing will be applied: the rest need not cost a check.
			unchecked = len(specs) - i
			break
		}
		if j, dup := seen[spec.ID]; dup {
			bad = append(bad, connector.FieldError{Field: entry + ".id", Message: fmt.Sprintf("%s is also entry %d; give each connection once", quote(spec.ID), j)})
			continue
		}
		seen[spec.ID] = i
		if err := checkID(spec.ID); err != nil {
			bad = append(bad, connector.FieldError{Field: entry + ".id", Message: "give 1 to 128 characters of A-Z, a-z, 0-9, _ and -"})
			continue
		}
		m.mu.Lock()
		var prev map[string]any
		var prevType, prevRaw string
		e := m.conns[spec.ID]
		if e != nil && e.stored {
			prev, prevType, plan[i].tag = e.props, e.rec.Type, e.rec.Tag()
			raw, _ := json.Marshal(e.props)
			prevRaw = string(raw)
		} else {
			e = nil
		}
		m.mu.Unlock()
		p, err := m.validate(spec, prev, prevType)
		if err != nil {
			var ce *Error
			if errors.As(err, &ce) && len(ce.Fields) > 0 {
				for _, f := range ce.Fields {
					bad = append(bad, connector.FieldError{Field: entry + "." + f.Field, Message: f.Message})
				}
			} else {
				bad = append(bad, connector.FieldError{Field: entry, Message: err.Error()})
			}
			continue
		}
		p.live.stop()
		switch {
		case e == nil:
			plan[i].action = ActionCreate
		case prevType == spec.Type && (bytes.Equal(p.raw, []byte(prevRaw)) || sameDecoded(p.schema, p.props, prev)):
			plan[i].action = ActionUnchanged
		default:
			plan[i].action = ActionUpdate
		}
	}
	if len(bad) > 0 {
		// Bounded, so that a hostile set cannot make the answer grow with it.
		if n := len(bad); n > connector.MaxFieldErrors {
			bad = append(bad[:connector.MaxFieldErrors:connector.MaxFieldErrors], connector.FieldError{Field: "connections", Message: fmt.Sprintf("%d more errors", n-connector.MaxFieldErrors)})
		}
		if unchecked > 0 {
			bad = append(bad, connector.FieldError{Field: "connections", Message: fmt.Sprintf("%d more entries not checked", unchecked)})
		}
		parts := make([]string, len(bad))
		for i, f := range bad {
			parts[i] = f.Field + ": " + f.Message
		}
		return nil, &Error{Code: CodeInvalidArgument, Fields: bad,
			Message: "invalid connection set, nothing applied: " + strings.Join(parts, "; ")}
	}
	var prune []string
	if opts.Prune {
		m.mu.Lock()
		for _, id := range m.ids {
			if _, named := seen[id]; !named && m.conns[id].stored {
				prune = append(prune, id)
			}
		}
		m.mu.Unlock()
	}

	out := make([]Applied, 0, len(plan)+len(prune))
	for _, p := range plan {
		a := Applied{ID: p.spec.ID, Action: p.action, Version: p.tag.Version}
		switch {
		case p.action == ActionUnchanged:
		case opts.DryRun:
			if p.action == ActionUpdate {
				a.Refs, a.Err = m.heldBy(ctx, p.spec.ID, "update")
			}
		case p.action == ActionCreate:
			var in Info
			in, a.Err = m.Create(ctx, p.spec)
			a.Version = in.Version
		default:
			var in Info
			in, a.Err = m.Update(ctx, p.spec, p.tag)
			if a.Err == nil {
				a.Version = in.Version
			}
		}
		out = append(out, refuse(a))
	}
	slices.Sort(prune)
	for _, id := range prune {
		a := Applied{ID: id, Action: ActionDelete}
		if opts.DryRun {
			a.Refs, a.Err = m.heldBy(ctx, id, "delete")
		} else {
			a.Err = m.Delete(ctx, id, Tag{})
		}
		out = append(out, refuse(a))
	}
	return out, nil
}

// refuse marks a as refused if it failed, with the refs that hold it.
func refuse(a Applied) Applied {
	if a.Err == nil {
		return a
	}
	a.Action = ActionRefused
	var ce *Error
	if errors.As(a.Err, &ce) && a.Refs == nil {
		a.Refs = ce.Refs
	}
	return a
}

// heldBy returns, for a dry run, the refs that would refuse a write of id
// and the error the write would get: refs held here, or, in a store
// that several instances share, refs other instances hold.
func (m *Manager) heldBy(ctx context.Context, id, op string) ([]string, error) {
	m.mu.Lock()
	e := m.conns[id]
	var refs []string
	if e != nil {
		refs = e.refNames()
	}
	m.mu.Unlock()
	if e == nil {
		return nil, nil
	}
	if len(refs) > 0 {
		return refs, inUse(id, pastOf(op), refs)
	}
	rr, ok := m.store.(store.RefReader)
	if !ok {
		return nil, nil
	}
	var held []store.Ref
	err := guard(func() (err error) { held, err = rr.Refs(ctx, id); return err })
	if err != nil {
		return nil, storeError(id, op, err)
	}
	if len(held) == 0 {
		return nil, nil
	}
	err = storeError(id, op, &store.InUseError{ID: id, Refs: held})
	var ce *Error
	errors.As(err, &ce)
	return ce.Refs, err
}

// sameDecoded reports whether a and b are the same props once decoded
// against the schema: 3 and 3.0 are one int, a default left out is the
// default given.
func sameDecoded(s *connector.Schema, a, b map[string]any) bool {
	da, err := s.Decode(a)
	if err != nil {
		return false
	}
	db, err := s.Decode(b)
	return err == nil && reflect.DeepEqual(da, db)
}
