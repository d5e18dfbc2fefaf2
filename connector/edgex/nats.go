//go:build include_nats_messaging

package edgex

// natsCompiled: go-mod-messaging was built with NATS.
const natsCompiled = true
