//go:build !include_nats_messaging

package edgex

// natsCompiled: go-mod-messaging compiles NATS only with the build tag
// include_nats_messaging.
const natsCompiled = false
