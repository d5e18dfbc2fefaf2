// Package connection is the Manager of named, shared connections.
//
// # Lifecycle of a connection
//
// Create validates the spec synchronously (the type is registered, the
// props decode strictly against its schema), stores it, and returns; the
// connection then dials in the background, so its status goes from
// connecting to connected, or to disconnected with the last error, while it
// retries with capped exponential backoff and jitter. A link that drops is
// redialed the same way. Status is read from memory and never dials.
//
// # Sharing
//
// Attach(id, ref) records an attach of ref (for example "rule1/source")
// and returns its client: a view of the one live link, scoped to this
// attach. Each attach holds the connection until its own release:
// Detach(id, ref) releases the oldest attach of that name, and the Handle
// that Hold returns releases exactly its own. A released client fails with
// connector.ErrDetached. A connection with refs can be neither updated nor
// deleted: the error names the refs. Update is atomic: the new spec is validated and stored
// before the live connection is replaced, and the old link is closed before
// the new one dials.
//
// # Events and status
//
// Every change is an Event, numbered in order: created, updated, deleted
// (remote when another instance sharing the store made it), status (the
// state or error changed), attached and detached. Subscribe (a channel)
// and Events (an iterator) deliver them, optionally resuming from a
// sequence number; a reader that falls behind gets EventLagged rather than
// slowing the Manager. WaitConnected waits for a connection to be up;
// History keeps its last 50 transitions. While a link is down its Status
// counts the failed Attempts and says when the NextAttemptAt is; a link
// that keeps failing the same way is logged again every 30 seconds, not
// at every attempt. Reconnect redials at once. An Observer (package
// connection/metrics) is told of dials, store calls and checks.
//
// # Errors
//
// Every error is an *Error with a Code; compare with errors.Is against
// ErrNotFound, ErrInUse and the other sentinels.
//
// # Secrets
//
// Props marked secret in a type's schema are masked in every Info, error
// and log line. An update that sends the mask back keeps the stored secret
// only while the props marked endpoint are unchanged; otherwise the secret
// must be given again (see package connection/secret).
package connection
