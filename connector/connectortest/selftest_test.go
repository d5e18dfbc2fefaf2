package connectortest_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/connectortest"
)

// The suite must be able to fail. Two broken connectors of a line protocol
// (a TCP echo peer): "silent" never notices a lost link (no Events.Lost,
// no Pinger), "greedy" dials a connection per client instead of sharing
// one. Run in a child process, the suite must fail DropAndReturn for the
// first and Shared for the second.
func TestSuiteFailsBrokenConnectors(t *testing.T) {
	if os.Getenv("CONNKIT_SUITE_SELFTEST") != "" {
		t.Skip("in the child")
	}
	// Each in a child of its own, at once: only the cases concerned.
	runs := map[string]string{
		"silent": "^TestSuiteOnBroken$/^silent$/^(Exchange|DropAndReturn)$",
		"greedy": "^TestSuiteOnBroken$/^greedy$/^(Exchange|Shared)$",
		"bypass": "^TestSuiteOnBroken$/^bypass$/^(Exchange|DialPolicy)$",
	}
	outs := map[string][]byte{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run", run, "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), "CONNKIT_SUITE_SELFTEST=1")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Errorf("the suite passed the %s connector:\n%s", name, out)
			}
			mu.Lock()
			outs[name] = out
			mu.Unlock()
		}()
	}
	wg.Wait()
	for name, want := range map[string]string{"silent": "--- FAIL: TestSuiteOnBroken/silent/DropAndReturn", "greedy": "--- FAIL: TestSuiteOnBroken/greedy/Shared",
		"bypass": "--- FAIL: TestSuiteOnBroken/bypass/DialPolicy"} {
		if !strings.Contains(string(outs[name]), want) {
			t.Errorf("the suite did not fail %q:\n%s", want, outs[name])
		}
		if pass := "--- PASS: TestSuiteOnBroken/" + name + "/Exchange"; !strings.Contains(string(outs[name]), pass) {
			t.Errorf("the %s connector should still pass %q:\n%s", name, pass, outs[name])
		}
	}
}

func TestSuiteOnBroken(t *testing.T) {
	if os.Getenv("CONNKIT_SUITE_SELFTEST") == "" {
		t.Skip("run by TestSuiteFailsBrokenConnectors")
	}
	addr := echoPeer(t)
	for _, name := range []string{"silent", "greedy", "bypass"} {
		t.Run(name, func(t *testing.T) {
			connectortest.Run(t, connectortest.Harness{
				Name:  "line",
				Type:  lineType{mode: name},
				Addr:  addr,
				Props: func(a string) map[string]any { return map[string]any{"addr": a} },
				Exchange: func(t *testing.T, client any) func(*testing.T) {
					c := client.(*lineClient)
					return func(t *testing.T) {
						if got, err := c.Echo("ping"); err != nil || got != "ping" {
							t.Fatalf("echo: %q %v", got, err)
						}
					}
				},
			})
		})
	}
}

// echoPeer is a TCP peer that echoes every line.
func echoPeer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

var lineSchema = &connector.Schema{Fields: []connector.Field{{Name: "addr", Kind: connector.String, Required: true, Endpoint: true}}}

// lineType's mode says how it is broken: silent (no loss noticed), greedy
// (a connection per client), bypass (a policy-checked dial thrown away,
// then the link dialed around the policy).
type lineType struct{ mode string }

func (lineType) Schema() *connector.Schema { return lineSchema }

func (l lineType) Open(p connector.Props, _ connector.Events) (connector.Conn, error) {
	return &lineConn{addr: p.String("addr"), greedy: l.mode == "greedy", bypass: l.mode == "bypass"}, nil
}

// lineConn dials once and never reports a lost link.
type lineConn struct {
	addr   string
	greedy bool
	bypass bool

	mu    sync.Mutex
	conns []net.Conn
	cur   *lineClient
}

func (c *lineConn) Connect(ctx context.Context) error {
	nc, err := connector.Dialer(ctx).DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	if c.bypass {
		// The policy said yes; the link goes around it all the same.
		nc.Close()
		if nc, err = (&net.Dialer{}).DialContext(ctx, "tcp", c.addr); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conns = append(c.conns, nc)
	c.cur = &lineClient{nc: nc, r: bufio.NewReader(nc)}
	return nil
}

func (c *lineConn) Client(string) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.greedy {
		if nc, err := net.Dial("tcp", c.addr); err == nil {
			c.conns = append(c.conns, nc)
			return &lineClient{nc: nc, r: bufio.NewReader(nc)}
		}
	}
	return &lineClient{conn: c}
}

func (c *lineConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nc := range c.conns {
		nc.Close()
	}
	return nil
}

type lineClient struct {
	conn *lineConn // shared: use its current link
	nc   net.Conn  // greedy: a link of its own
	r    *bufio.Reader
}

func (c *lineClient) Echo(s string) (string, error) {
	nc, r := c.nc, c.r
	if c.conn != nil {
		c.conn.mu.Lock()
		cur := c.conn.cur
		c.conn.mu.Unlock()
		if cur == nil {
			return "", errors.New("not connected")
		}
		nc, r = cur.nc, cur.r
	}
	nc.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := nc.Write([]byte(s + "\n")); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}
