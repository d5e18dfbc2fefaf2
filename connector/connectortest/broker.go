package connectortest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Broker is a private mosquitto on a loopback port of its own, which a
// test may stop (as a crash would) and start again on the same port
// without disturbing the tests that share the main broker.
type Broker struct {
	t    testing.TB
	port int
	conf string
	cmd  *exec.Cmd
}

// NewBroker reserves a port for a private mosquitto, which Start runs; it
// is killed when the test ends. The test is skipped if mosquitto is not
// installed and CONNKIT_MQTT_ADDR is not set.
func NewBroker(t testing.TB) *Broker {
	t.Helper()
	Binary(t, "mosquitto", "CONNKIT_MQTT_ADDR")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	b := &Broker{t: t, port: port, conf: filepath.Join(t.TempDir(), "mosquitto.conf")}
	conf := fmt.Sprintf("persistence false\nuser root\nsys_interval 1\nlog_dest none\nlistener %d 127.0.0.1\nallow_anonymous true\n", port)
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// Persist makes the broker keep its sessions and queued messages on disk
// across a Restart, as a broker with "persistence true" does. Call it
// before Start.
func (b *Broker) Persist() {
	b.t.Helper()
	dir := b.t.TempDir()
	conf := fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 1\nuser root\nsys_interval 1\nlog_dest none\nlistener %d 127.0.0.1\nallow_anonymous true\n", dir, b.port)
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		b.t.Fatal(err)
	}
}

// Restart stops the broker as an operator would (Terminate) and starts
// it again on the same port.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Terminate()
	b.Start()
}

// Terminate stops the broker as an operator would: SIGTERM, on which a
// persistent one saves its sessions.
func (b *Broker) Terminate() {
	if b.cmd != nil && b.cmd.Process != nil {
		b.cmd.Process.Signal(syscall.SIGTERM)
		b.cmd.Wait()
		b.cmd = nil
	}
}

// Addr returns the broker's host:port.
func (b *Broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// Start runs mosquitto and waits until it accepts connections.
func (b *Broker) Start() {
	b.t.Helper()
	b.cmd = exec.Command(Binary(b.t, "mosquitto", "CONNKIT_MQTT_ADDR"), "-c", b.conf)
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", b.Addr())
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto on %s did not start: %v", b.Addr(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills mosquitto, as a crash would.
func (b *Broker) Stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	b.cmd.Wait()
	b.cmd = nil
}
