package mqtt

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/connectortest"
)

// wsBridge serves MQTT over WebSocket by piping each link to the broker's
// TCP listener: Debian's mosquitto here cannot open a WebSocket listener.
func wsBridge(t *testing.T, broker string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			return
		}
		if c.Subprotocol() != "mqtt" {
			c.Close(websocket.StatusPolicyViolation, "want the mqtt subprotocol")
			return
		}
		ws := websocket.NetConn(r.Context(), c, websocket.MessageBinary)
		defer ws.Close()
		tcp, err := net.Dial("tcp", broker)
		if err != nil {
			return
		}
		defer tcp.Close()
		done := make(chan struct{}, 2)
		go func() { io.Copy(tcp, ws); done <- struct{}{} }()
		go func() { io.Copy(ws, tcp); done <- struct{}{} }()
		<-done
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestOverWebSocket(t *testing.T) {
	bridge := wsBridge(t, connectortest.Env(t, "CONNKIT_MQTT_ADDR"))
	m := newManager(t, nil)
	if _, err := m.Create(ctx, connection.Spec{ID: "ws", Type: Type, Props: map[string]any{"server": "ws://" + bridge + "/mqtt"}}); err != nil {
		t.Fatal(err)
	}
	connectortest.WaitState(t, m, "ws", connection.StateConnected, 10*time.Second)
	c := attach(t, m, "ws", "r")
	var in inbox
	topic := randomID("ws/")
	wait(t, c.Subscribe(topic, 1, in.handler))
	wait(t, c.Publish(topic, 1, false, "over websocket"))
	waitFor(t, "a round trip over WebSocket", 5*time.Second, func() bool { return in.has("over websocket") })
	m.Detach("ws", "r")
}
