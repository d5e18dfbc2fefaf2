package edgex

import (
	"net"
	"strconv"
	"testing"

	"github.com/connkit/connkit/connector/connectortest"
)

func split(t *testing.T, addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return host, n
}

func TestConformance(t *testing.T) {
	addr := connectortest.Env(t, "CONNKIT_MQTT_ADDR")
	authAddr := connectortest.Env(t, "CONNKIT_MQTT_AUTH_ADDR")
	user, pw := connectortest.Env(t, "CONNKIT_MQTT_USER"), connectortest.Env(t, "CONNKIT_MQTT_PASSWORD")
	props := func(a string) map[string]any {
		host, port := split(t, a)
		return map[string]any{"server": host, "port": port, "optional": map[string]any{"Username": user, "Password": pw}}
	}
	connectortest.Run(t, connectortest.Harness{
		Name:  Type,
		Type:  Connector{},
		Addr:  addr,
		Props: props,
		BadAuth: func() map[string]any {
			host, port := split(t, authAddr)
			return map[string]any{"server": host, "port": port, "optional": map[string]any{"Username": user, "Password": "wr0ng-Edgex-pw"}}
		},
		Secrets: []string{pw, "wr0ng-Edgex-pw"},
		Invalid: []connectortest.Invalid{
			{Name: "no server", Props: map[string]any{}, Fields: []string{"server"}},
			{Name: "server with port", Props: map[string]any{"server": "127.0.0.1:1883"}, Fields: []string{"server"}},
			{Name: "port", Props: map[string]any{"server": "127.0.0.1", "port": 70000}, Fields: []string{"port"}},
			{Name: "redis", Props: map[string]any{"server": "127.0.0.1", "type": "redis"}, Fields: []string{"type"}},
			{Name: "nats without the tag", Props: map[string]any{"server": "127.0.0.1", "type": "nats-core"}, Fields: []string{"type"}},
			{Name: "unknown optional", Props: map[string]any{"server": "127.0.0.1", "optional": map[string]any{"Color": "red"}}, Fields: []string{"optional"}},
			{Name: "bad Qos", Props: map[string]any{"server": "127.0.0.1", "optional": map[string]any{"Qos": 3}}, Fields: []string{"optional"}},
		},
		SourceProps: props,
		SinkProps:   props,
		Same:        func(a, b any) bool { return a.(*view).c == b.(*view).c },
	})
}
