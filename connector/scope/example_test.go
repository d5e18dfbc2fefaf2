package scope_test

import (
	"errors"
	"fmt"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/scope"
)

// A view of a shared link for one attach: its operations fail once the
// attach is released, and nothing is delivered to it after.
func Example() {
	s := scope.New("rule1/source")
	out := make(chan string, 1)

	fmt.Println(scope.Send(s, out, "first", nil, nil), <-out)
	s.End() // what the Manager calls when the attach is released
	fmt.Println(scope.Send(s, out, "second", nil, nil))
	fmt.Println(errors.Is(s.Err("mytype"), connector.ErrDetached))
	// Output:
	// true first
	// false
	// true
}
