package sql_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/connkit/connkit/connector/connectortest"
)

// mariadb is a private server that a test can stop and start again with
// the same port and data.
type mariadb struct {
	t        *testing.T
	dir      string
	port     int
	cmd      *exec.Cmd
	user, pw string
	args     []string // more flags of mariadbd
}

// newMariaDB makes a data directory and reserves a port; Start runs it
// with a database test that user, identified by pw, may use.
func newMariaDB(t *testing.T, user, pw string) *mariadb {
	t.Helper()
	connectortest.Binary(t, "mariadbd", "CONNKIT_MYSQL_URL")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "ckdb")
	if err != nil {
		t.Fatal(err)
	}
	d := &mariadb{t: t, dir: dir, port: port, user: user, pw: pw}
	t.Cleanup(func() {
		d.Stop()
		os.RemoveAll(dir)
	})
	out, err := exec.Command(connectortest.Binary(t, "mariadb-install-db", "CONNKIT_MYSQL_URL"), "--no-defaults", "--datadir="+filepath.Join(dir, "data"),
		"--user=root", "--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	return d
}

func (d *mariadb) Addr() string { return "127.0.0.1:" + strconv.Itoa(d.port) }

func (d *mariadb) URL() string {
	return fmt.Sprintf("mysql://%s:%s@%s/test", d.user, d.pw, d.Addr())
}

// Start runs the server, waits until it answers, and makes the test
// database and user the first time.
func (d *mariadb) Start() {
	d.t.Helper()
	d.cmd = exec.Command(connectortest.Binary(d.t, "mariadbd", "CONNKIT_MYSQL_URL"), append([]string{"--no-defaults", "--datadir=" + filepath.Join(d.dir, "data"), "--user=root",
		"--socket=" + filepath.Join(d.dir, "s"), "--pid-file=" + filepath.Join(d.dir, "pid"), "--port=" + strconv.Itoa(d.port),
		"--bind-address=127.0.0.1", "--skip-name-resolve", "--log-error=" + filepath.Join(d.dir, "err.log")}, d.args...)...)
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	root, err := sqlx.Open("mysql", "root@unix("+filepath.Join(d.dir, "s")+")/")
	if err != nil {
		d.t.Fatal(err)
	}
	defer root.Close()
	deadline := time.Now().Add(30 * time.Second)
	for root.Ping() != nil {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.dir, "err.log"))
			d.t.Fatalf("MariaDB did not start:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS test",
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", d.user, d.pw),
		fmt.Sprintf("GRANT ALL ON test.* TO '%s'@'%%'", d.user),
	} {
		if _, err := root.ExecContext(context.Background(), q); err != nil {
			d.t.Fatalf("%s: %v", q, err)
		}
	}
}

// Stop kills the server, as a crash would.
func (d *mariadb) Stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
	d.cmd = nil
}
