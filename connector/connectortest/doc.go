// Package connectortest helps test connector types and the code that uses
// them: Run is the conformance suite every connector runs against its real
// peer, Fake is a connector.Type with simulated peers for unit tests of a
// Manager or an engine, and Proxy and Capture are the loopback helpers the
// suite is built on.
//
// # The conformance suite
//
// A connector package runs the suite from a conformance_test.go of its
// own, with a Harness that names a real peer (Addr, a literal IP:port) and
// says how to use the client it hands out (Exchange). Run runs these
// cases, each on a fresh Manager with short backoffs (10 to 200 ms), a 2 s
// dial timeout and a 200 ms health interval:
//
//   - Connects: props that reach the peer become connected, with no error.
//   - Invalid: each Harness.Invalid props map is refused at Create with
//     invalid_argument naming the listed fields; nothing is stored.
//   - Unreachable: a closed port and a peer that accepts and never answers
//     (or Harness.Unreachable) turn disconnected with an error within 3 s
//     (Connect must return when its 2 s context ends), never connected.
//   - StartsLate: a peer that starts after the connection was created is
//     reached by the Manager's redials (skipped without Harness.StartLate).
//   - Exchange: a message or row goes through an attached client and
//     arrives, as Harness.Exchange proves against the real peer.
//   - Shared: 50 refs on one connection each get a working client; 30
//     exchanges through three of them make the peer accept at most
//     Harness.Conns+5 new connections (never one per operation), and it
//     keeps 1 to Harness.Conns (default 1) open; a type that listens says
//     with Same that its clients share one listener.
//   - DropAndReturn: the Proxy drops every connection and refuses new
//     ones. The connection must turn disconnected within 10 s: the
//     connector must notice a lost link itself (Events.Lost) or through
//     connector.Pinger. When the peer returns it must be connected again
//     within 15 s, and the client must work again (a subscription
//     delivers again). Once all is closed, the loss left no goroutine. A
//     type that listens skips it.
//   - DialPolicy: a Manager whose dial policy denies loopback never lets
//     the connection reach its peer (the Proxy accepts nothing) and says
//     "denied"; one that allows exactly the peer connects, and every
//     connection the peer accepts, for Connect, the client's work and
//     health pings, is one the policy saw (DialPolicy.Observe): every
//     socket must come from connector.Dialer of the context of Connect
//     and Ping, or from Events.Dialer (Harness.SelfDials allows a client
//     that dials again, by itself, where a probe through the policy just
//     went). A type that listens skips it.
//   - Released: a type whose conns hand out views (connector.Viewer) must
//     give Harness.Use; a view fails with connector.ErrDetached once its
//     attach is released.
//   - CloseLeavesNothing: after the Manager's Close, with a connection in
//     use and others redialing, Close took under 5 s, no goroutine is left
//     (goleak) and the process has no more open files than before
//     (/proc/self/fd).
//   - Secrets: no secret (Harness.Secrets and every value the schema marks
//     secret in Props and BadAuth) appears in any Info, error or log line,
//     the standard library's loggers included; refused credentials
//     (Harness.BadAuth) are a permanent error; an update that sends the
//     masks back keeps the secrets.
//   - SecretStaysHome: an update to another endpoint that sends the masks
//     back, and a check that names the stored connection with another
//     endpoint, are refused naming the secret, and a Capture listener at
//     that endpoint receives nothing.
//   - Checks: a type that listens passes a check of an address it can
//     bind, fails one of an address another program holds
//     (Harness.Unreachable), and refuses a side it does not have as
//     unsupported. For a type that dials, for each side with
//     Harness.SourceProps or SinkProps: the
//     live peer passes; a closed port fails with reason refused within half
//     the 2 s timeout; a silent peer fails with reason timeout within the
//     timeout and one second, and a checker of one slot has its slot back
//     within 300 ms (a check must return within about 100 ms of its
//     context ending); BadAuth fails with reason unauthorized and
//     without the secret in the message; a dial policy that denies
//     loopback, the peer's port or its network makes the check fail with
//     ErrDenied, and one that allows exactly the peer passes, so every
//     socket a check opens must go through connector.Dialer. A check
//     leaves no goroutine behind.
//
// The suite is itself tested: a connector that never notices a lost link
// fails DropAndReturn, and one that dials per client fails Shared.
package connectortest
