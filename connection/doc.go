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
