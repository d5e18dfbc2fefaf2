package mqtt

import (
	"context"

	"github.com/connkit/connkit/connector"
	"github.com/connkit/connkit/connector/internal/mqttdial"
)

// CheckSource implements connector.SourceChecker: it connects to the
// broker with a probe client id of its own, then disconnects.
func (Connector) CheckSource(ctx context.Context, p map[string]any) error { return probe(ctx, p) }

// CheckSink implements connector.SinkChecker, as CheckSource.
func (Connector) CheckSink(ctx context.Context, p map[string]any) error { return probe(ctx, p) }

func probe(ctx context.Context, raw map[string]any) error {
	p, _, err := schema.DecodeCheck(raw, nil)
	if err != nil {
		return err
	}
	s, err := parse(p)
	if err != nil {
		return err
	}
	// Never the session's own id: the broker would drop the live session.
	id := randomID("connkit-probe-")
	if s.clientID != "" {
		id = randomID(s.clientID + "-probe-")
	}
	// A clean session of its own: a probe never leaves one at the broker.
	s.CleanSession = true
	cl, err := s.Dial(ctx, id, nil, nil)
	connector.StepNext(ctx, "handshake", err)
	if err != nil {
		return connector.CheckFailed(mqttdial.Reason(err), err)
	}
	cl.Disconnect(0)
	return nil
}
