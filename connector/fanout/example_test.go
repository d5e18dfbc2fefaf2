package fanout_test

import (
	"fmt"

	"github.com/connkit/connkit/connector/fanout"
)

// Two attaches on one topic: one subscription at the peer, which goes
// with the last of them.
func Example() {
	var subs fanout.Set[string] // guarded by the connector's own lock
	fmt.Println("subscribe at the peer:", subs.Add("sensors/#", "rule1", "handler1"))
	fmt.Println("subscribe at the peer:", subs.Add("sensors/#", "rule2", "handler2"))
	fmt.Println("deliver to", len(subs.Of("sensors/#")))
	fmt.Println("unsubscribe at the peer:", subs.Remove("rule1", "sensors/#"))
	fmt.Println("unsubscribe at the peer:", subs.Remove("rule2", "sensors/#"))
	// Output:
	// subscribe at the peer: true
	// subscribe at the peer: false
	// deliver to 2
	// unsubscribe at the peer: []
	// unsubscribe at the peer: [sensors/#]
}
