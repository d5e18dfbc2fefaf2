package mqtt

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

	"github.com/connkit/connkit/connector/connectortest"
)

// broker is a private mosquitto that a test can stop and start again on
// the same port.
type broker struct {
	t    testing.TB
	port int
	conf string
	cmd  *exec.Cmd
}

// newBroker reserves a port; Start runs mosquitto on it.
func newBroker(t testing.TB) *broker {
	t.Helper()
	connectortest.Binary(t, "mosquitto", "CONNKIT_MQTT_ADDR")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	b := &broker{t: t, port: port, conf: filepath.Join(dir, "mosquitto.conf")}
	conf := fmt.Sprintf("persistence false\nuser root\nsys_interval 1\nlog_dest none\nlistener %d 127.0.0.1\nallow_anonymous true\n", port)
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

func (b *broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// Start runs mosquitto and waits until it accepts connections.
func (b *broker) Start() {
	b.t.Helper()
	b.cmd = exec.Command(connectortest.Binary(b.t, "mosquitto", "CONNKIT_MQTT_ADDR"), "-c", b.conf)
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
func (b *broker) Stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	b.cmd.Wait()
	b.cmd = nil
}
