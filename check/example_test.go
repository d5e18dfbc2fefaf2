package check_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/connkit/connkit/check"
	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/registry"
)

func ExampleChecker_Sink() {
	fake := connectortest.NewFake()
	fake.SetUp("db.example", false)
	reg := &registry.Registry{}
	reg.Register("fake", fake)
	c := check.New(&check.Options{
		Registry:    reg,
		Timeout:     3 * time.Second,
		MaxInFlight: 4,
		// In production: never probe the host itself or the cloud metadata service.
		DialPolicy: &connector.DialPolicy{DenyLoopback: true, DenyLinkLocal: true,
			Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	})
	_, err := c.Sink(context.Background(), check.Request{Type: "fake", Props: map[string]any{"addr": "db.example", "table": "t"}})
	var ce *check.Error
	if errors.As(err, &ce) {
		fmt.Println(errors.Is(err, check.ErrFailed), ce.Reason)
	}
	// Output:
	// true refused
}
