package mqtt

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"

	"github.com/coder/websocket"

	"github.com/connkit/connkit/connector"
)

// dialWebsocket opens MQTT over WebSocket with coder/websocket rather than
// paho's own, so that the dial honours ctx and a check's DialPolicy.
func dialWebsocket(ctx context.Context, u *url.URL, tc *tls.Config) (net.Conn, error) {
	du := *u
	du.User = nil
	tr := &http.Transport{DialContext: connector.Dialer(ctx).DialContext, TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c, _, err := websocket.Dial(ctx, du.String(), &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: []string{"mqtt"},
	})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(-1)
	// The link outlives the dial: its own context ends when it closes.
	return websocket.NetConn(context.Background(), c, websocket.MessageBinary), nil
}
