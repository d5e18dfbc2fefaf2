package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/connkit/connkit/connection"
)

// entry is one connection of a provisioning file: the body of PUT
// /connections.
type entry struct {
	ID    string         `json:"id"`
	Typ   string         `json:"typ"`
	Props map[string]any `json:"props"`
}

// provision applies the file at path (JSON or YAML: an array of {id, typ,
// props}) with the rules of PUT /connections, and logs one line per
// connection. An invalid file changes nothing and fails naming the entry.
func provision(ctx context.Context, m *connection.Manager, path string, log *slog.Logger) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-provision: %w", err)
	}
	// YAML is a superset of JSON: one reader for both.
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("-provision %s: not JSON or YAML: %v", path, err)
	}
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	d.UseNumber()
	var entries []entry
	if err := d.Decode(&entries); err != nil {
		msg := err.Error()
		if strings.HasPrefix(msg, "json: unknown field ") {
			msg = strings.TrimPrefix(msg, "json: ") + "; an entry has id, typ and props"
		}
		return fmt.Errorf("-provision %s: give an array of {id, typ, props}: %s", path, msg)
	}
	if entries == nil {
		return fmt.Errorf("-provision %s: empty; give an array of {id, typ, props} ([] for none)", path)
	}
	specs := make([]connection.Spec, len(entries))
	for i, e := range entries {
		specs[i] = connection.Spec{ID: e.ID, Type: e.Typ, Props: e.Props}
	}
	res, err := m.Apply(ctx, specs, nil)
	if err != nil {
		var ce *connection.Error
		if errors.As(err, &ce) && len(ce.Fields) > 0 {
			var parts []string
			for _, f := range ce.Fields {
				parts = append(parts, describe(f.Field, entries)+": "+f.Message)
			}
			return fmt.Errorf("-provision %s: nothing applied: %s", path, strings.Join(parts, "; "))
		}
		return fmt.Errorf("-provision %s: %w", path, err)
	}
	refused := 0
	for _, a := range res {
		if a.Err != nil {
			refused++
			log.Warn("provisioned connection refused", "connection", a.ID, "err", a.Err, "refs", a.Refs)
			continue
		}
		log.Info("provisioned connection", "connection", a.ID, "action", a.Action, "version", a.Version)
	}
	if refused > 0 {
		return fmt.Errorf("-provision %s: %d of %d connections refused (see the log)", path, refused, len(res))
	}
	return nil
}

// describe names the entry of a field such as "[2].server": its number
// and id.
func describe(field string, entries []entry) string {
	var i int
	var rest string
	if _, err := fmt.Sscanf(field, "[%d]%s", &i, &rest); err != nil || i < 0 || i >= len(entries) {
		return field
	}
	return fmt.Sprintf("entry %d (id %q) %s", i, entries[i].ID, strings.TrimPrefix(rest, "."))
}
