package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jmoiron/sqlx"

	"github.com/connkit/connkit/connection"
	"github.com/connkit/connkit/connector/httppush"
	"github.com/connkit/connkit/connector/mqtt"
	"github.com/connkit/connkit/connector/sql"
)

// config names the peers the engine's connections reach.
type config struct {
	MQTT  string // broker URL, tcp://host:port
	DB    string // mysql://... or sqlite:path
	Push  string // listen address of the ingest endpoint
	Table string // where readings go
}

// reading is what devices send.
type reading struct {
	Device string  `json:"device"`
	Value  float64 `json:"value"`
}

var tableRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// engine runs two rules on three shared connections:
//
//	forward_ingest: HTTP push on /ingest  -> MQTT sensors/<device>/temperature
//	store_readings: MQTT sensors/+/temperature -> SQL table
//
// Both rules use the one MQTT connection "broker": two refs, one session.
type engine struct {
	m    *connection.Manager
	log  *slog.Logger
	cfg  config
	push *httppush.Receiver
	wg   sync.WaitGroup
	stop context.CancelFunc
}

// start declares the connections and starts the rules.
func start(ctx context.Context, m *connection.Manager, cfg config, log *slog.Logger) (*engine, error) {
	if !tableRE.MatchString(cfg.Table) {
		return nil, fmt.Errorf("table %q: use letters, digits and _", cfg.Table)
	}
	// Declared first, attached after: Apply leaves a connection that has
	// not changed since the last start untouched (same version, no
	// redial), and cannot update one that rules already hold.
	res, err := m.Apply(ctx, []connection.Spec{
		{ID: "broker", Type: mqtt.Type, Props: map[string]any{"server": cfg.MQTT}},
		{ID: "warehouse", Type: sql.Type, Props: map[string]any{"url": cfg.DB, "maxOpenConns": 4}},
		{ID: "ingest", Type: httppush.Type, Props: map[string]any{"addr": cfg.Push, "endpoint": "/ingest"}},
	}, nil)
	if err != nil {
		return nil, err
	}
	for _, a := range res {
		if a.Err != nil {
			return nil, fmt.Errorf("connection %s: %w", a.ID, a.Err)
		}
		log.Info("connection declared", "connection", a.ID, "action", a.Action, "version", a.Version)
	}
	rctx, cancel := context.WithCancel(context.Background())
	e := &engine{m: m, log: log, cfg: cfg, stop: cancel}
	if err := e.storeReadings(ctx, rctx); err != nil {
		e.Stop()
		return nil, err
	}
	if err := e.forwardIngest(ctx, rctx); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

// storeReadings: MQTT in, SQL out.
func (e *engine) storeReadings(ctx, rctx context.Context) error {
	const rule = "store_readings"
	db, err := sql.Attach(ctx, e.m, "warehouse", rule+"/sink")
	if err != nil {
		return err
	}
	in, err := mqtt.Attach(ctx, e.m, "broker", rule+"/source")
	if err != nil {
		return err
	}
	if err := waitConnected(ctx, e.m, "warehouse"); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+e.cfg.Table+
		` (device VARCHAR(64) NOT NULL, value DOUBLE NOT NULL, received_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("%s: create table: %w", rule, err)
	}
	insert := db.Rebind(`INSERT INTO ` + e.cfg.Table + ` (device, value, received_at) VALUES (?, ?, ?)`)
	rows := make(chan reading, 256)
	tok := in.Subscribe("sensors/+/temperature", 1, func(_ paho.Client, msg paho.Message) {
		var r reading
		if err := json.Unmarshal(msg.Payload(), &r); err != nil {
			e.log.Warn("bad reading", "rule", rule, "topic", msg.Topic(), "err", err)
			return
		}
		if r.Device == "" {
			r.Device = strings.Split(msg.Topic(), "/")[1]
		}
		select {
		case rows <- r:
		case <-rctx.Done():
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("%s: subscribe: %v", rule, tok.Error())
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			select {
			case r := <-rows:
				e.write(rctx, db, insert, r)
			case <-rctx.Done():
				return
			}
		}
	}()
	return nil
}

func (e *engine) write(ctx context.Context, db *sqlx.DB, insert string, r reading) {
	if _, err := db.ExecContext(ctx, insert, r.Device, r.Value, time.Now().UnixMilli()); err != nil && ctx.Err() == nil {
		e.log.Warn("insert failed", "rule", "store_readings", "err", err)
	}
}

// forwardIngest: HTTP push in, MQTT out.
func (e *engine) forwardIngest(ctx, rctx context.Context) error {
	const rule = "forward_ingest"
	out, err := mqtt.Attach(ctx, e.m, "broker", rule+"/sink")
	if err != nil {
		return err
	}
	e.push, err = httppush.Attach(ctx, e.m, "ingest", rule+"/source")
	if err != nil {
		return err
	}
	// A push is answered 200 once the broker has acknowledged its
	// publish (queued meanwhile if the broker is away), so a device
	// resends what connkit never got to the broker.
	err = e.push.Handle("", "", func(ctx context.Context, msg httppush.Message) error {
		var r reading
		if err := json.Unmarshal(msg.Body, &r); err != nil || r.Device == "" {
			e.log.Warn("bad push", "rule", rule, "err", err)
			return nil // acknowledged and dropped: a resend would not mend it
		}
		tok := out.Publish("sensors/"+r.Device+"/temperature", 1, false, msg.Body)
		select {
		case <-tok.Done():
			return tok.Error()
		case <-ctx.Done():
			return ctx.Err()
		case <-rctx.Done():
			return rctx.Err()
		}
	})
	if err != nil {
		return err
	}
	return waitConnected(ctx, e.m, "ingest")
}

// PushAddr is where devices POST readings.
func (e *engine) PushAddr() string { return e.push.Addr() }

// Stop ends the rules and detaches them; the connections stay, for the
// next start.
func (e *engine) Stop() {
	e.stop()
	e.wg.Wait()
	for _, ref := range [][2]string{
		{"broker", "store_readings/source"}, {"warehouse", "store_readings/sink"},
		{"broker", "forward_ingest/sink"}, {"ingest", "forward_ingest/source"},
	} {
		e.m.Detach(ref[0], ref[1])
	}
}

// waitConnected waits until the connection id is up, or ctx ends.
func waitConnected(ctx context.Context, m *connection.Manager, id string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		in, err := m.Get(id)
		if err != nil {
			return err
		}
		if in.State == connection.StateConnected {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connection %s is %s: %s", id, in.State, in.Err)
		case <-t.C:
		}
	}
}
