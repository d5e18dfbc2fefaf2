package connector_test

import (
	"fmt"
	"net/netip"

	"github.com/connkit/connkit/connector"
)

// A binding holds the secrets of some references to their networks: a
// connection that reads ${env:CONNKIT_SECRET_PROD_PW} dials 10.0.0.0/8
// only.
func ExamplePolicy_Bound() {
	p := &connector.Policy{Bind: []connector.SecretBinding{{
		Ref:  "env:CONNKIT_SECRET_PROD_",
		Dial: connector.DialPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	}}}
	bound := p.Bound([]string{"env:CONNKIT_SECRET_PROD_PW"})
	fmt.Println(bound.Dial.Permit(netip.MustParseAddrPort("10.1.2.3:1883")))
	fmt.Println(bound.Dial.Permit(netip.MustParseAddrPort("192.168.1.9:1883")) != nil)
	// Output:
	// <nil>
	// true
}
