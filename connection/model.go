package connection

import (
	"time"

	"github.com/connkit/connkit/store"
)

// Spec is what a user gives to create or update a connection.
type Spec struct {
	// ID names the connection: 1 to 128 characters of A-Z, a-z, 0-9, _ and
	// -, case kept.
	ID string `json:"id"`
	// Type is a registered type name such as "mqtt".
	Type string `json:"typ"`
	// Props are decoded strictly against the type's schema.
	Props map[string]any `json:"props"`
}

// State is where a connection's link stands.
type State string

// The states of a connection.
const (
	StateConnecting   State = "connecting"
	StateConnected    State = "connected"
	StateDisconnected State = "disconnected"
)

// Status is a connection's state, the last error, and when the state last
// changed. Reading it never dials.
type Status struct {
	State State  `json:"status"`
	Err   string `json:"err"`
	// Permanent says that Err will not go away by retrying (bad
	// credentials, a type that is not compiled in): fix the connection.
	Permanent bool      `json:"permanent,omitempty"`
	Since     time.Time `json:"statusSince"`
	// Attempts counts the dials that failed since the link was last up.
	Attempts int `json:"attempts,omitempty"`
	// NextAttemptAt is when the next dial is due, while redialing.
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
}

// Info is a connection as the Manager reports it. Secrets in Props are
// masked with secret.Mask.
type Info struct {
	ID    string         `json:"id"`
	Type  string         `json:"typ"`
	Props map[string]any `json:"props"`
	Status
	// RefCount is how many attaches hold the connection; Refs their
	// names, sorted, each once (a name can be held by several attaches).
	RefCount int      `json:"refCount"`
	Refs     []string `json:"refs"`
	// Version is 1 after the create and grows by one with each update;
	// Incarnation tells this connection from any other the id had before
	// a delete (it never repeats). Tag gives both, for Update and Delete.
	Version     int64 `json:"version"`
	Incarnation int64 `json:"incarnation"`
	// LastActivityAt is when the link last carried a message, to the
	// second, for a type that reports it (connector.Activity); zero, and
	// left out of JSON, if never.
	LastActivityAt time.Time `json:"lastActivityAt,omitzero"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// Tag names one version of one connection: its incarnation and version.
// No two states a connection id ever has share a Tag, across deletes and
// creates again too, so a write made with a Tag read before a delete
// never matches the connection created after it. The zero Tag names any.
type Tag = store.Tag

// Tag returns the connection's Tag, for Update and Delete.
func (in Info) Tag() Tag { return Tag{Incarnation: in.Incarnation, Version: in.Version} }

// ValidID reports whether id is a valid connection id.
func ValidID(id string) bool { return store.ValidID(id) }

func checkID(id string) error {
	if !ValidID(id) {
		return invalidField(id, "id", "give 1 to 128 characters of A-Z, a-z, 0-9, _ and -")
	}
	return nil
}
