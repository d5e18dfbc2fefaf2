package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector"
)

// provision applies the file at path (JSON or YAML: an array of {id, typ,
// props}) with the rules of PUT /connections, and logs one line per
// connection. An invalid file changes nothing and fails naming the entry.
func provision(ctx context.Context, m *connection.Manager, path string, log *slog.Logger) error {
	data, err := readBounded(path, maxProvision)
	if err != nil {
		return fmt.Errorf("-provision: %w", err)
	}
	if err := noAliases(data); err != nil {
		return fmt.Errorf("-provision %s: %w", path, err)
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

// maxProvision bounds a provisioning file: the body of PUT /connections
// is 1 MiB; a file may hold comments and layout besides.
const maxProvision = 4 << 20

// readBounded reads the file at path, refusing one over max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is over %d bytes", path, max)
	}
	return b, nil
}

// noAliases refuses a YAML document with aliases (*name): each would be
// expanded in full, so that a small file could stand for gigabytes.
func noAliases(data []byte) error {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		return nil // not YAML: the reader below says why
	}
	var walk func(n *yamlv3.Node) error
	walk = func(n *yamlv3.Node) error {
		if n.Kind == yamlv3.AliasNode {
			return fmt.Errorf("line %d: an alias (*%s): aliases are not read, write each value out", n.Line, connector.Short(n.Value))
		}
		for _, c := range n.Content {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(&doc)
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
