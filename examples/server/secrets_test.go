package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connection/httpapi"
	"github.com/connkit/connkit/store/sqlite"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNoSecretLeaks runs every type with secrets, right and wrong ones,
// through the REST API against the real servers, and scans every response
// body and every log line for them.
func TestNoSecretLeaks(t *testing.T) {
	mqttAddr, authAddr := os.Getenv("CONNKIT_MQTT_ADDR"), os.Getenv("CONNKIT_MQTT_AUTH_ADDR")
	user, mqttPW, dbURL := os.Getenv("CONNKIT_MQTT_USER"), os.Getenv("CONNKIT_MQTT_PASSWORD"), os.Getenv("CONNKIT_MYSQL_URL")
	if mqttAddr == "" || dbURL == "" {
		t.Skip("the servers of make test are not running")
	}
	dbPW := dbURL[strings.Index(dbURL, ":")+3:]
	dbPW = dbPW[strings.Index(dbPW, ":")+1 : strings.Index(dbPW, "@")]
	wrongDB := strings.Replace(dbURL, ":"+dbPW+"@", ":Wr0ng-Db-Secret@", 1)
	authHost, authPort, _ := net.SplitHostPort(authAddr)
	port, _ := strconv.Atoi(authPort)
	secrets := []string{mqttPW, dbPW, "Wr0ng-Mqtt-Secret", "Wr0ng-Db-Secret", "Wr0ng-Edgex-Secret", "T0ken-Secret"}

	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := connection.New(ctx, st, &connection.Options{Logger: log, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	srv := httptest.NewServer(httpapi.New(m, &httpapi.Options{Logger: log}))
	defer srv.Close()

	var bodies []string
	call := func(method, path string, body any) []byte {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(b))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(res.Body)
		res.Body.Close()
		bodies = append(bodies, method+" "+path+" -> "+string(out))
		return out
	}
	specs := []map[string]any{
		{"id": "mqtt_ok", "typ": "mqtt", "props": map[string]any{"server": "tcp://" + authAddr, "username": user, "password": mqttPW}},
		{"id": "mqtt_bad", "typ": "mqtt", "props": map[string]any{"server": "tcp://" + authAddr, "username": user, "password": "Wr0ng-Mqtt-Secret"}},
		{"id": "sql_ok", "typ": "sql", "props": map[string]any{"url": dbURL}},
		{"id": "sql_bad", "typ": "sql", "props": map[string]any{"url": wrongDB}},
		{"id": "ws_down", "typ": "websocket", "props": map[string]any{"addr": "127.0.0.1:1", "requestHeader": map[string]any{"Authorization": "Bearer T0ken-Secret"}}},
		{"id": "edgex_bad", "typ": "edgex", "props": map[string]any{"server": authHost, "port": port, "optional": map[string]any{"Username": user, "Password": "Wr0ng-Edgex-Secret"}}},
	}
	for _, s := range specs {
		call("POST", "/connections", s)
	}
	// Let every dial happen, and the bad ones fail and be logged.
	deadline := time.Now().Add(15 * time.Second)
	for {
		settled := true
		for _, in := range m.List() {
			if strings.HasSuffix(in.ID, "_ok") != (in.State == connection.StateConnected) || in.State == connection.StateConnecting {
				settled = false
			}
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("states did not settle: %+v", m.List())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var list []map[string]any
	json.Unmarshal(call("GET", "/connections", nil), &list)
	for _, c := range list {
		id := c["id"].(string)
		call("GET", "/connections/"+id, nil)
		call("PUT", "/connections/"+id, map[string]any{"typ": c["typ"], "props": c["props"]}) // masks sent back
	}
	call("POST", "/metadata/sinks/connection/mqtt", map[string]any{"server": "tcp://" + authAddr, "username": user, "password": "Wr0ng-Mqtt-Secret"})
	call("POST", "/metadata/sinks/connection/sql", map[string]any{"url": wrongDB, "table": "t"})
	call("POST", "/metadata/sources/connection/sql", map[string]any{"connectionSelector": "sql_ok", "table": "no_such_table"})
	call("POST", "/metadata/sinks/connection/edgex", map[string]any{"connectionSelector": "edgex_bad"})
	call("POST", "/metadata/sinks/connection/websocket", map[string]any{"connectionSelector": "ws_down"})
	call("POST", "/connections", map[string]any{"id": "bad props", "typ": "sql", "props": map[string]any{"url": "postgres://u:" + dbPW + "@h/db"}})
	call("POST", "/connections", map[string]any{"id": "badprops", "typ": "sql", "props": map[string]any{"url": "postgres://u:" + dbPW + "@h/db"}})

	// The masked secrets survived the PUTs: the good ones still connect.
	for _, id := range []string{"mqtt_ok", "sql_ok"} {
		deadline := time.Now().Add(10 * time.Second)
		for in, _ := m.Get(id); in.State != connection.StateConnected; in, _ = m.Get(id) {
			if time.Now().After(deadline) {
				t.Fatalf("%s after a PUT of its masked props: %+v", id, in.Status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	m.Close()
	all := strings.Join(bodies, "\n") + "\n" + logs.String()
	for _, s := range secrets {
		if strings.Contains(all, s) {
			for _, line := range strings.Split(all, "\n") {
				if strings.Contains(line, s) {
					t.Errorf("secret %q leaked: %s", s, line)
				}
			}
		}
	}
	if !strings.Contains(all, "******") {
		t.Error("no masked value anywhere: the test saw nothing")
	}
	if !strings.Contains(logs.String(), "not Authorized") && !strings.Contains(logs.String(), "Access denied") {
		t.Error("the failed logins were not logged: the log scan proved nothing")
	}
}
