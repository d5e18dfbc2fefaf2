package nng

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"go.nanomsg.org/mangos/v3"
	"go.nanomsg.org/mangos/v3/transport"
)

// mangos dials (and redials) by itself, so the socket of every pipe comes
// from a transport of connkit's own: mangos' tcp and ipc, dialing through
// the connection's policy dialer, with a Guard on the socket and a
// deadline on the SP handshake, which mangos has not.
const (
	tcpScheme = "connkit+tcp"
	ipcScheme = "connkit+ipc"
)

// optDial is the dialer option that says how a pipe's socket is opened:
// a func(context.Context) (net.Conn, error).
const optDial = "connkit:dial"

// handshakeTimeout bounds the dial and the SP handshake of a pipe.
const handshakeTimeout = 10 * time.Second

func init() {
	transport.RegisterTransport(tran(tcpScheme))
	transport.RegisterTransport(tran(ipcScheme))
}

type tran string

func (t tran) Scheme() string { return string(t) }

func (t tran) NewDialer(url string, sock mangos.Socket) (transport.Dialer, error) {
	if _, err := transport.StripScheme(t, url); err != nil {
		return nil, err
	}
	return &pipeDialer{ipc: t == ipcScheme, proto: sock.Info(), hs: transport.NewConnHandshaker()}, nil
}

// NewListener refuses: connkit's sockets only dial.
func (t tran) NewListener(string, mangos.Socket) (transport.Listener, error) {
	return nil, mangos.ErrBadTran
}

type pipeDialer struct {
	ipc   bool
	proto mangos.ProtocolInfo
	hs    transport.Handshaker

	mu      sync.Mutex
	dial    func(context.Context) (net.Conn, error)
	maxRecv int
}

func (d *pipeDialer) Dial() (transport.Pipe, error) {
	d.mu.Lock()
	dial, maxRecv := d.dial, d.maxRecv
	d.mu.Unlock()
	if dial == nil {
		return nil, mangos.ErrBadOption
	}
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	nc, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	var p transport.ConnPipe
	if d.ipc {
		p = transport.NewConnPipeIPC(nc, d.proto)
	} else {
		p = transport.NewConnPipe(nc, d.proto)
	}
	p.SetOption(mangos.OptionMaxRecvSize, maxRecv)
	d.hs.Start(p)
	pipe, err := d.hs.Wait()
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return pipe, nil
}

func (d *pipeDialer) SetOption(name string, v any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch name {
	case optDial:
		f, ok := v.(func(context.Context) (net.Conn, error))
		if !ok {
			return mangos.ErrBadValue
		}
		d.dial = f
	case mangos.OptionMaxRecvSize:
		n, ok := v.(int)
		if !ok {
			return mangos.ErrBadValue
		}
		d.maxRecv = n
	default:
		return mangos.ErrBadOption
	}
	return nil
}

func (d *pipeDialer) GetOption(name string) (any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name == mangos.OptionMaxRecvSize {
		return d.maxRecv, nil
	}
	return nil, mangos.ErrBadOption
}

// framing is that of an SP socket (nanomsg's TCP and IPC transports): the
// 8-byte header of the handshake (the link is up after it), then each
// message's 64-bit size, after a byte of 1 over IPC.
type framing struct {
	ipc bool
	up  bool
}

func (f *framing) Frame(b []byte) (int, int64, bool, error) {
	if !f.up {
		if len(b) < 8 {
			return 0, 0, false, nil
		}
		f.up = true
		return 8, 0, true, nil
	}
	n := 8
	if f.ipc {
		n = 9
	}
	if len(b) < n {
		return 0, 0, false, nil
	}
	size := binary.BigEndian.Uint64(b[n-8:])
	if size>>63 != 0 {
		return 0, 0, false, fmt.Errorf("an nng message claiming %d bytes", size)
	}
	return n, int64(size), false, nil
}
