// Package tlsdial is the TLS of connkit's clients that guard what a peer
// sends: the handshake goes over a connector.Guard without framing, so
// that the bytes a peer sends before its link is up are bounded under TLS
// too (a certificate chain, a handshake message crypto/tls takes up to
// 256 KiB of); the Guard of the protocol above TLS ends that budget when
// it sees the link up (connector.GuardOptions.Below).
package tlsdial

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"github.com/connkit/connkit/connector"
)

// Dial dials addr through connector.Dial (the dial policy, a check's
// steps) and makes a TLS handshake with tc (nil: the default; an empty
// server name: addr's host). It returns the TLS conn and the Guard under
// it.
func Dial(ctx context.Context, network, addr string, tc *tls.Config) (*tls.Conn, *connector.Guard, error) {
	raw, err := connector.Dial(ctx, network, addr, nil)
	if err != nil {
		return nil, nil, err
	}
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if tc.ServerName == "" {
		tc = tc.Clone()
		tc.ServerName, _, _ = net.SplitHostPort(addr)
	}
	below := connector.NewGuard(raw, nil, &connector.GuardOptions{What: "TLS handshake"})
	conn, err := Handshake(ctx, below, tc)
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	return conn, below, nil
}

// Handshake makes a TLS client handshake with tc over c under ctx; within
// a check it records the step tls.
func Handshake(ctx context.Context, c net.Conn, tc *tls.Config) (*tls.Conn, error) {
	conn := tls.Client(c, tc)
	start := time.Now()
	err := conn.HandshakeContext(ctx)
	connector.StepDone(ctx, "tls", start, err)
	if err != nil {
		return nil, err
	}
	return conn, nil
}
