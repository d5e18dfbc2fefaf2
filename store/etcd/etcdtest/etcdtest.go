// Package etcdtest starts real etcd members on loopback for tests: one, or
// a cluster, each of which can be stopped and started again.
package etcdtest

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connkit/connkit/connector/connectortest"
)

// Member is one etcd process.
type Member struct {
	Name, Client, Peer string // client and peer host:port
	args               []string
	bin                string
	cmd                *exec.Cmd
	t                  testing.TB
}

// Cluster starts n members that form one cluster, and stops them when the
// test ends.
func Cluster(t testing.TB, n int) []*Member {
	t.Helper()
	bin := connectortest.Binary(t, "etcd", "CONNKIT_ETCD_ENDPOINTS")
	ms := make([]*Member, n)
	var initial []string
	for i := range ms {
		ms[i] = &Member{Name: fmt.Sprintf("e%d", i), Client: freeAddr(t), Peer: freeAddr(t), bin: bin, t: t}
		initial = append(initial, ms[i].Name+"=http://"+ms[i].Peer)
	}
	dir := t.TempDir()
	for _, m := range ms {
		m.args = []string{"--name", m.Name, "--data-dir", filepath.Join(dir, m.Name),
			"--listen-client-urls", "http://" + m.Client, "--advertise-client-urls", "http://" + m.Client,
			"--listen-peer-urls", "http://" + m.Peer, "--initial-advertise-peer-urls", "http://" + m.Peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(dir)}
		m.Start()
	}
	for _, m := range ms {
		m.WaitHealthy(30 * time.Second)
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.Stop()
		}
	})
	return ms
}

// Endpoints are the members' client addresses.
func Endpoints(ms []*Member) []string {
	eps := make([]string, len(ms))
	for i, m := range ms {
		eps[i] = m.Client
	}
	return eps
}

// Start starts the member (again).
func (m *Member) Start() {
	m.t.Helper()
	m.cmd = exec.Command(m.bin, m.args...)
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
}

// Stop kills the member and waits for it to be gone.
func (m *Member) Stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGCONT) // a paused member dies too
	m.cmd.Process.Signal(syscall.SIGKILL)
	m.cmd.Wait()
	m.cmd = nil
}

// Pause stops the member as a stalled host would (SIGSTOP): its sockets
// stay open and nothing answers.
func (m *Member) Pause() {
	if m.cmd != nil {
		m.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume continues a paused member (SIGCONT).
func (m *Member) Resume() {
	if m.cmd != nil {
		m.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// WaitHealthy polls the member's /health until it answers true.
func (m *Member) WaitHealthy(within time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(within)
	for {
		res, err := http.Get("http://" + m.Client + "/health")
		if err == nil {
			ok := res.StatusCode == 200
			res.Body.Close()
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("etcd member %s not healthy within %v: %v", m.Name, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
