package edgex

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/connkit/connkit/connector"
)

// probe asks an MQTT broker for a session and leaves at once, all under
// ctx, with a client id of its own. go-mod-messaging's connect cannot be
// cancelled, so it is run only against a broker that has just answered
// this probe: a silent peer fails here, at ctx's deadline.
func (s *settings) probe(ctx context.Context) error {
	if s.cfg.Type != "mqtt" {
		return nil
	}
	b := s.cfg.Broker
	addr := net.JoinHostPort(b.Host, strconv.Itoa(b.Port))
	var nc net.Conn
	var err error
	tc := s.tls.config(b.Protocol, b.Host)
	switch {
	case tc != nil:
		nc, err = connector.Dial(ctx, "tcp", addr, tc)
	case b.Protocol == "tcp", b.Protocol == "mqtt", b.Protocol == "":
		nc, err = connector.Dial(ctx, "tcp", addr, nil)
	default:
		if connector.DialPolicyFrom(ctx) != nil {
			// The client's own dial cannot be held to the policy.
			return connector.CheckFailed(connector.ReasonUnreachable, fmt.Errorf("%w: protocol %q cannot be checked under a dial policy", connector.ErrDialDenied, b.Protocol))
		}
		return nil // a transport the probe does not speak: the client's connect decides
	}
	if err != nil {
		return connector.CheckFailed(connector.NetReason(err), fmt.Errorf("dial %s: %w", addr, err))
	}
	err = s.session(ctx, nc, addr)
	connector.StepNext(ctx, "handshake", err)
	return err
}

// session makes the MQTT CONNECT of the probe on nc and leaves.
func (s *settings) session(ctx context.Context, nc net.Conn, addr string) error {
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion = "MQTT", 4
	cp.CleanSession = true
	cp.Keepalive = 30
	cp.ClientIdentifier = randomID("connkit-probe-")
	// As paho does: a password only with a user name (MQTT 3.1.1 forbids
	// one without the other, and mosquitto hangs up).
	if u := s.cfg.Optional["Username"]; u != "" {
		cp.UsernameFlag, cp.Username = true, u
		if p := s.cfg.Optional["Password"]; p != "" {
			cp.PasswordFlag, cp.Password = true, []byte(p)
		}
	}
	if err := cp.Write(nc); err != nil {
		return s.probeErr(ctx, addr, err)
	}
	pkt, err := packets.ReadPacket(nc)
	if err != nil {
		return s.probeErr(ctx, addr, err)
	}
	ack, ok := pkt.(*packets.ConnackPacket)
	if !ok {
		return connector.CheckFailed(connector.ReasonUnreachable, fmt.Errorf("%s answered CONNECT with %T, not CONNACK", addr, pkt))
	}
	if ack.ReturnCode != packets.Accepted {
		err := packets.ConnErrors[ack.ReturnCode]
		reason := connector.ReasonUnreachable
		if errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
			reason = connector.ReasonUnauthorized
		}
		return connector.CheckFailed(reason, fmt.Errorf("broker %s refused the session: %w", addr, err))
	}
	packets.NewControlPacket(packets.Disconnect).Write(nc)
	return nil
}

func (s *settings) probeErr(ctx context.Context, addr string, err error) error {
	if ctx.Err() != nil {
		return connector.CheckFailed(connector.ReasonTimeout, fmt.Errorf("%s accepted the connection but did not answer CONNECT: %w", addr, ctx.Err()))
	}
	return connector.CheckFailed(connector.NetReason(err), fmt.Errorf("MQTT handshake with %s: %w", addr, err))
}
