package customtype_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
	"github.com/connkit/connkit/examples/customtype"
)

// harness describes the type and a real redis-server for the suite; typ
// is the type under test (the real one, or a broken copy).
func harness(t *testing.T, typ connector.Type) connectortest.Harness {
	addr := connectortest.Env(t, "CONNKIT_REDIS_ADDR")
	pw := connectortest.Env(t, "CONNKIT_REDIS_PASSWORD")
	props := func(a string) map[string]any { return map[string]any{"addr": a, "password": pw} }
	return connectortest.Harness{
		Name:    customtype.Type,
		Type:    typ,
		Addr:    addr,
		Props:   props,
		BadAuth: func() map[string]any { return map[string]any{"addr": addr, "password": "Wrong-redis-pw9"} },
		Secrets: []string{pw, "Wrong-redis-pw9"},
		Invalid: []connectortest.Invalid{
			{Name: "no addr", Props: map[string]any{}, Fields: []string{"addr"}},
			{Name: "no port", Props: map[string]any{"addr": "127.0.0.1"}, Fields: []string{"addr"}},
			{Name: "negative db", Props: map[string]any{"addr": addr, "db": -1}, Fields: []string{"db"}},
			{Name: "CA that is no file", Props: map[string]any{"addr": addr, "rootCaPath": "/dev/zero"}, Fields: []string{"rootCaPath"}},
		},
		StartLate: func(t *testing.T) (string, func()) {
			bin := connectortest.Binary(t, "redis-server", "CONNKIT_REDIS_ADDR")
			a := connectortest.ClosedAddr(t)
			_, port, _ := net.SplitHostPort(a)
			return a, func() {
				cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
					"--requirepass", pw, "--dir", t.TempDir())
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			}
		},
		SourceProps: props,
		SinkProps:   props,
		// The pool keeps a connection for commands and may hold one more
		// for a health ping that came at the same time.
		Conns: 2,
		// A key written through the attached client is read back by a
		// client of the test's own, straight at the server.
		Exchange: func(t *testing.T, client any) func(*testing.T) {
			c := client.(*redis.Client)
			direct := redis.NewClient(&redis.Options{Addr: addr, Password: pw, MaxRetries: -1})
			t.Cleanup(func() { direct.Close() })
			key := "conformance:" + strconv.FormatInt(time.Now().UnixNano(), 36)
			n := 0
			return func(t *testing.T) {
				n++
				ctx := context.Background()
				if err := c.Set(ctx, key, n, time.Minute).Err(); err != nil {
					t.Fatalf("SET through the attached client: %v", err)
				}
				if got, err := direct.Get(ctx, key).Int(); err != nil || got != n {
					t.Fatalf("the server has %v %v, want %d", got, err, n)
				}
			}
		},
	}
}

func TestConformance(t *testing.T) {
	connectortest.Run(t, harness(t, customtype.Connector{}))
}

// silent is a copy of the type whose lost-link reporting is removed: its
// conns do not ping.
type silent struct{ customtype.Connector }

func (s silent) Open(p connector.Props, ev connector.Events) (connector.Conn, error) {
	c, err := s.Connector.Open(p, ev)
	if err != nil {
		return nil, err
	}
	return struct{ connector.Conn }{c}, nil // hides Ping
}

// TestSuiteFailsTheSilentCopy: the suite does not pass a copy of the type
// that never notices a lost link: it fails DropAndReturn.
func TestSuiteFailsTheSilentCopy(t *testing.T) {
	if os.Getenv("CUSTOMTYPE_SILENT") != "" {
		connectortest.Run(t, harness(t, silent{}))
		return
	}
	connectortest.Env(t, "CONNKIT_REDIS_ADDR")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSuiteFailsTheSilentCopy$/^(Exchange|DropAndReturn)$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "CUSTOMTYPE_SILENT=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--- FAIL: TestSuiteFailsTheSilentCopy/DropAndReturn") ||
		!strings.Contains(string(out), "--- PASS: TestSuiteFailsTheSilentCopy/Exchange") {
		t.Fatalf("the suite should pass Exchange and fail DropAndReturn of the silent copy (exit %v):\n%s", err, out)
	}
	fmt.Fprintln(os.Stderr, "the suite failed the silent copy, as it should")
}
