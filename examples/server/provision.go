package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/connkit/connkit/connection"
)

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
	// The decoder of the REST API's bodies: strict, bounded in depth.
	specs, err := connection.ParseSpecs(js)
	if err != nil {
		return fmt.Errorf("-provision %s: give an array of {id, typ, props}: %s", path, strings.TrimPrefix(err.Error(), "invalid request body: "))
	}
	res, err := m.Apply(ctx, specs, nil)
	if err != nil {
		var ce *connection.Error
		if errors.As(err, &ce) && len(ce.Fields) > 0 {
			var parts []string
			for _, f := range ce.Fields {
				parts = append(parts, describe(f.Field, specs)+": "+f.Message)
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
func describe(field string, entries []connection.Spec) string {
	var i int
	var rest string
	if _, err := fmt.Sscanf(field, "[%d]%s", &i, &rest); err != nil || i < 0 || i >= len(entries) {
		return field
	}
	return fmt.Sprintf("entry %d (id %q) %s", i, entries[i].ID, strings.TrimPrefix(rest, "."))
}
