package mqtt

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ErrBufferFull is the error of a QoS 1 or 2 publish when publishBuffer
// messages are owed to the broker already: queued while the link is down,
// or sent and not yet acknowledged. The call fails at once; it never
// waits for room.
var ErrBufferFull = errors.New("mqtt: the publish buffer is full")

// outgoing is one QoS 1 or 2 publish the connection owes the broker until
// the broker acknowledges it.
type outgoing struct {
	seq      uint64
	topic    string
	qos      byte
	retained bool
	payload  []byte
	tok      *token
	file     string // under clientStatePath; "" if kept in memory only
	tries    int    // links it was sent on
}

// queue holds what the connection owes the broker; guarded by conn.mu.
type queue struct {
	max      int           // publishBuffer
	dir      string        // clientStatePath's directory of this client id, "" for none
	loaded   bool          // dir's messages of an earlier run are in pending
	loading  chan struct{} // closed when a read of dir under way ends
	lock     *os.File      // dir's lock, held while the connection is open
	seq      uint64
	pending  []*outgoing   // waiting for a link, in seq order
	owed     int           // pending, in flight, or being written to dir
	inflight int           // messages sent and not completed
	kick     chan struct{} // wakes the current link's pump; nil while down
}

// add puts o back among the pending, in seq order.
func (q *queue) add(o *outgoing) {
	i, _ := slices.BinarySearchFunc(q.pending, o.seq, func(x *outgoing, s uint64) int {
		switch {
		case x.seq < s:
			return -1
		case x.seq > s:
			return 1
		}
		return 0
	})
	q.pending = slices.Insert(q.pending, i, o)
}

func payloadBytes(payload any) ([]byte, error) {
	switch p := payload.(type) {
	case string:
		return []byte(p), nil
	case []byte:
		return bytes.Clone(p), nil
	case bytes.Buffer:
		return bytes.Clone(p.Bytes()), nil
	case *bytes.Buffer:
		return bytes.Clone(p.Bytes()), nil
	}
	return nil, fmt.Errorf("mqtt: a payload of type %T; use string, []byte or bytes.Buffer", payload)
}

// stateDir is the directory of clientID's queue under root: its name is
// the id in hex, so no id can name a path elsewhere.
func stateDir(root, clientID string) string {
	return filepath.Join(root, "mqtt-"+hex.EncodeToString([]byte(clientID)))
}

// A message file is: qos, retained (one byte each), the topic's length
// (uint16, big endian), the topic, the payload.
const fileHeader = 4

// save writes o to dir durably, before its publish is acknowledged to the
// caller as queued: a crash after Publish returned loses nothing.
func save(dir string, o *outgoing) error {
	b := make([]byte, 0, fileHeader+len(o.topic)+len(o.payload))
	ret := byte(0)
	if o.retained {
		ret = 1
	}
	b = append(b, o.qos, ret)
	b = binary.BigEndian.AppendUint16(b, uint16(len(o.topic)))
	b = append(append(b, o.topic...), o.payload...)
	f, err := os.CreateTemp(dir, "tmp-")
	if err != nil {
		return fmt.Errorf("mqtt: queueing the publish in clientStatePath: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	name := filepath.Join(dir, fmt.Sprintf("%020d.msg", o.seq))
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mqtt: queueing the publish in clientStatePath: %w", err)
	}
	o.file = name
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// load reads the messages an earlier run left in dir, all of them (they
// were acknowledged to their callers as queued, whatever publishBuffer
// is now), in the order they were published, and the next sequence
// number. Files
// that are not messages of ours are left alone; a damaged one is renamed
// .bad and skipped.
func load(dir string) (msgs []*outgoing, next uint64, lock *os.File, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, nil, fmt.Errorf("clientStatePath: %w", err)
	}
	// One connection at a time, in this process or another: two would
	// send each other's messages.
	lock, err = os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("clientStatePath: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, 0, nil, fmt.Errorf("clientStatePath: another connection with this clientid uses %s (%v); give each its own clientid or path", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		lock.Close()
		return nil, 0, nil, fmt.Errorf("clientStatePath: %w", err)
	}
	for _, e := range ents { // sorted by name: by seq
		name, ok := strings.CutSuffix(e.Name(), ".msg")
		seq, perr := strconv.ParseUint(name, 10, 64)
		if !ok || perr != nil || !e.Type().IsRegular() {
			if strings.HasPrefix(e.Name(), "tmp-") {
				os.Remove(filepath.Join(dir, e.Name())) // a save a crash cut short
			}
			continue
		}
		next = max(next, seq+1)
		path := filepath.Join(dir, e.Name())
		o, err := readMessage(path)
		if err != nil {
			os.Rename(path, path+".bad")
			continue
		}
		o.seq, o.file, o.tok = seq, path, newToken()
		msgs = append(msgs, o)
	}
	return msgs, next, lock, nil
}

// maxFile bounds what load reads of one file: the largest packet MQTT
// can carry.
const maxFile = 256 << 20

func readMessage(path string) (*outgoing, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() < fileHeader || fi.Size() > maxFile {
		return nil, errors.New("not a message")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if b[0] < 1 || b[0] > 2 || b[1] > 1 || fileHeader+n > len(b) {
		return nil, errors.New("not a message")
	}
	return &outgoing{qos: b[0], retained: b[1] == 1, topic: string(b[fileHeader : fileHeader+n]), payload: b[fileHeader+n:]}, nil
}

// maxInflight bounds the QoS 1 and 2 messages sent and not yet
// completed: mosquitto (max_inflight_messages, 20 by default) drops a
// client's message past its quota and still acknowledges it, which MQTT
// 3.1.1 gives it no way to refuse with, so more would be lost silently.
const maxInflight = 20

// maxTries bounds the links one message is sent on: a message the broker
// answers by dropping the link (one it refuses) fails with ErrDropped
// rather than being sent first on every link for ever.
const maxTries = 10

// window is how many messages the pump may have in flight. On a
// persistent session a new link's paho first resends those of the last
// link (as many as were in flight then), and the queue sends its own
// copies of them too: half the quota each keeps both within it.
func (c *conn) window() int {
	if c.s.CleanSession {
		return maxInflight
	}
	return maxInflight / 2
}

// ErrDropped is the error of a QoS 1 or 2 publish whose link dropped each
// of the maxTries times it was sent: the broker may refuse it (its ACL,
// its size limit).
var ErrDropped = errors.New("mqtt: the link dropped each time the message was sent")

// publish queues a QoS 1 or 2 message for the link's pump, which sends
// the queue in order; its token completes when the broker acknowledged
// it. It never waits for the network.
func (c *conn) publish(topic string, qos byte, retained bool, payload []byte) paho.Token {
	if err := c.ready(); err != nil {
		return doneToken(err)
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return doneToken(ErrClosed)
	case c.q.max <= 0 && c.cur == nil:
		c.mu.Unlock()
		return doneToken(ErrNotConnected)
	case c.q.max > 0 && c.q.owed >= c.q.max:
		c.mu.Unlock()
		return doneToken(fmt.Errorf("%w: %d messages are owed to the broker already (publishBuffer); retry once it acknowledges them", ErrBufferFull, c.q.max))
	}
	c.q.seq++
	o := &outgoing{seq: c.q.seq, topic: topic, qos: qos, retained: retained, payload: payload, tok: newToken()}
	c.q.owed++
	dir := c.q.dir
	c.mu.Unlock()
	if dir != "" {
		if err := save(dir, o); err != nil {
			c.mu.Lock()
			c.q.owed--
			c.mu.Unlock()
			return doneToken(err)
		}
	}
	c.mu.Lock()
	if c.closed {
		c.q.owed--
		c.mu.Unlock()
		o.tok.complete(ErrClosed)
		return o.tok
	}
	c.q.add(o)
	kick := c.q.kick
	c.mu.Unlock()
	poke(kick)
	return o.tok
}

// poke wakes a pump, if there is one.
func poke(kick chan struct{}) {
	if kick == nil {
		return
	}
	select {
	case kick <- struct{}{}:
	default:
	}
}

// pump sends the queue over the link cl, in order, until down closes:
// one goroutine per link, so that no caller waits for the network and
// the broker gets the messages in the order they were published.
func (c *conn) pump(cl paho.Client, down <-chan struct{}, kick chan struct{}) {
	defer c.wg.Done()
	for {
		select {
		case <-down:
			return
		case <-kick:
		}
		for {
			c.mu.Lock()
			if c.cur != cl || len(c.q.pending) == 0 || c.q.inflight >= c.window() {
				c.mu.Unlock()
				break // a completion pokes again
			}
			o := c.q.pending[0]
			c.q.pending[0] = nil
			c.q.pending = c.q.pending[1:]
			c.q.inflight++
			o.tries++
			c.mu.Unlock()
			pt := cl.Publish(o.topic, o.qos, o.retained, o.payload)
			c.active()
			c.wg.Add(1)
			go c.follow(cl, down, o, pt)
		}
	}
}

// follow waits for the broker's acknowledgement of o, sent on cl: done,
// it completes o's token (and removes its file); if the link went down
// or the send failed, o is queued again for the next send (at QoS 1 the
// broker may then get it twice), up to maxTries.
func (c *conn) follow(cl paho.Client, down <-chan struct{}, o *outgoing, pt paho.Token) {
	defer c.wg.Done()
	var err error
	select {
	case <-pt.Done():
		err = pt.Error()
	case <-down:
		err = ErrNotConnected
	}
	c.mu.Lock()
	c.q.inflight--
	if errors.Is(err, paho.ErrNotConnected) {
		o.tries-- // paho refused it at once: it never reached the wire
	}
	kick := c.q.kick // the current link's, perhaps a newer one
	if err != nil && !c.closed && (c.q.max > 0 || o.file != "") && o.tries < maxTries {
		c.q.add(o)
		c.mu.Unlock()
		poke(kick)
		return
	}
	c.q.owed--
	switch {
	case c.closed && err != nil:
		err = ErrClosed
	case err != nil && o.tries >= maxTries:
		err = fmt.Errorf("%w (%d times; the broker may refuse it): %v", ErrDropped, maxTries, err)
	}
	c.mu.Unlock()
	if err == nil && o.file != "" {
		os.Remove(o.file)
	} else if err != nil && o.file != "" && !errors.Is(err, ErrClosed) {
		// Given up on: not sent again by the next process either.
		os.Rename(o.file, o.file+".failed")
	}
	o.tok.complete(err)
	poke(kick) // room in the window
}

// ready reads clientStatePath's messages of an earlier run into the
// queue, once, before anything is numbered or sent; callers that come
// while another reads wait for it without holding a lock.
func (c *conn) ready() error {
	c.mu.Lock()
	if c.q.dir == "" || c.q.loaded {
		c.mu.Unlock()
		return nil
	}
	if wait := c.q.loading; wait != nil {
		c.mu.Unlock()
		<-wait
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.q.loaded {
			return errors.New("mqtt: clientStatePath could not be read; see the connection's status")
		}
		return nil
	}
	done := make(chan struct{})
	c.q.loading = done
	dir := c.q.dir
	c.mu.Unlock()
	msgs, next, lock, err := load(dir)
	c.mu.Lock()
	defer close(done)
	defer c.mu.Unlock()
	c.q.loading = nil
	if err != nil {
		return err
	}
	if c.closed {
		lock.Close()
		return ErrClosed
	}
	c.q.loaded, c.q.lock = true, lock
	c.q.seq = max(c.q.seq, next)
	for _, o := range msgs {
		c.q.add(o)
	}
	c.q.owed += len(msgs)
	return nil
}
