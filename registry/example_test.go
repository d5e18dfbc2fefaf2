package registry_test

import (
	"fmt"

	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
)

// A private registry, as a test builds one; connector packages fill
// registry.Default from init instead.
func ExampleRegistry() {
	var reg registry.Registry // the zero value is ready
	reg.Register("fake", connectortest.NewFake())
	for _, t := range reg.List() {
		var secret []string
		for _, f := range t.Schema.Fields {
			if f.Secret || len(f.SecretKeys) > 0 {
				secret = append(secret, f.Name)
			}
		}
		fmt.Println(t.Name, "secret props:", secret)
	}
	// Output:
	// fake secret props: [password url header]
}
