package broker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/tunnel"
	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// bundleSink is an OnSupportBundle that keeps what it receives, and can
// hold an upload until released.
type bundleSink struct {
	mu      sync.Mutex
	got     map[string][]byte
	from    []string
	errs    []error
	hold    chan struct{} // non-nil: uploads wait for it to close
	started chan struct{}
}

func (s *bundleSink) take(_ context.Context, b broker.SupportBundle, r io.Reader) (string, error) {
	if s.started != nil {
		close(s.started)
		s.started = nil
	}
	if s.hold != nil {
		<-s.hold
	}
	data, err := io.ReadAll(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs = append(s.errs, err)
		return "", err
	}
	id := "b" + string(rune('0'+len(s.got)))
	if s.got == nil {
		s.got = map[string][]byte{}
	}
	s.got[id] = data
	s.from = append(s.from, b.ConnectorID+" "+b.Name)
	return id, nil
}

func bundleHarness(t *testing.T, sink *bundleSink, max int64) *brokertest.Harness {
	h := brokertest.NewHarness(t, brokertest.Options{EditBroker: func(c *broker.Config) {
		if sink != nil {
			c.OnSupportBundle = sink.take
		}
		c.MaxSupportBundle = max
		c.SupportRecipient = "age1test"
	}})
	h.WaitOnline()
	return h
}

func sendBundle(h *brokertest.Harness, name string, data []byte) (string, error) {
	return h.Client.SendStream(context.Background(), protocol.StreamHeader{Type: protocol.StreamSupportBundle, Name: name, Size: int64(len(data))}, bytes.NewReader(data))
}

func streamCode(err error) string {
	var se *protocol.StreamError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// A support bundle goes through the real tunnel on a typed stream, byte
// for byte, while the recipient reached the connector in hello_ack.
func TestSupportBundleUpload(t *testing.T) {
	sink := &bundleSink{}
	h := bundleHarness(t, sink, 0)
	if got := h.Client.Status().SupportRecipient; got != "age1test" {
		t.Errorf("recipient from hello_ack = %q, want age1test", got)
	}
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	id, err := sendBundle(h, "support-c1.tar.gz.age", data)
	if err != nil {
		t.Fatalf("SendStream = %v", err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if !bytes.Equal(sink.got[id], data) || len(sink.from) != 1 || sink.from[0] != "c1 support-c1.tar.gz.age" {
		t.Errorf("stored %d bytes under %q from %v, want %d from c1", len(sink.got[id]), id, sink.from, len(data))
	}
}

// The broker takes only known stream types, within the size limit, one
// upload at a time per connector, and says which refusal it is.
func TestConnectorStreamRefusals(t *testing.T) {
	sink := &bundleSink{}
	h := bundleHarness(t, sink, 1000)

	_, err := h.Client.SendStream(context.Background(), protocol.StreamHeader{Type: "shell", Name: "x", Size: 3}, bytes.NewReader([]byte("abc")))
	if streamCode(err) != protocol.StreamUnknownType {
		t.Errorf("unknown type: SendStream = %v, want %s", err, protocol.StreamUnknownType)
	}
	_, err = sendBundle(h, "big", make([]byte, 1001))
	if streamCode(err) != protocol.StreamTooLarge {
		t.Errorf("1001 bytes over a 1000 limit: SendStream = %v, want %s", err, protocol.StreamTooLarge)
	}
	_, err = sendBundle(h, "", []byte("x"))
	if streamCode(err) != protocol.StreamBadHeader {
		t.Errorf("no name: SendStream = %v, want %s", err, protocol.StreamBadHeader)
	}

	// One at a time: the second upload is refused while the first is held.
	sink.hold, sink.started = make(chan struct{}), make(chan struct{})
	started := sink.started
	first := make(chan error, 1)
	go func() { _, err := sendBundle(h, "first", []byte("one")); first <- err }()
	<-started
	if _, err := sendBundle(h, "second", []byte("two")); streamCode(err) != protocol.StreamBusy {
		t.Errorf("second upload during the first: SendStream = %v, want %s", err, protocol.StreamBusy)
	}
	close(sink.hold)
	if err := <-first; err != nil {
		t.Errorf("first upload = %v", err)
	}
	sink.hold = nil
	if _, err := sendBundle(h, "third", []byte("three")); err != nil {
		t.Errorf("upload after the first finished = %v", err)
	}
	sink.mu.Lock()
	if len(sink.got) != 2 {
		t.Errorf("stored %d bundles, want 2 (first, third)", len(sink.got))
	}
	sink.mu.Unlock()

	// A connector that stops short: the control plane keeps nothing.
	ctx, cancel := context.WithCancel(context.Background())
	sink.started = make(chan struct{})
	started = sink.started
	done := make(chan error, 1)
	go func() {
		body := io.MultiReader(bytes.NewReader(make([]byte, 100)), ctxReader{ctx})
		_, err := h.Client.SendStream(ctx, protocol.StreamHeader{Type: protocol.StreamSupportBundle, Name: "short", Size: 900}, body)
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled upload = %v", err)
	}
	brokertest.WaitFor(t, "the short upload to fail at the control plane", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.errs) == 1 && errors.Is(sink.errs[0], io.ErrUnexpectedEOF)
	})
	sink.mu.Lock()
	if len(sink.got) != 2 {
		t.Errorf("stored %d bundles after a short upload, want still 2", len(sink.got))
	}
	sink.mu.Unlock()
}

// A control plane without a bundle store refuses them as an unknown type;
// with the tunnel down the connector says so at once.
func TestSupportBundleNotTaken(t *testing.T) {
	h := bundleHarness(t, nil, 0)
	if _, err := sendBundle(h, "x", []byte("x")); streamCode(err) != protocol.StreamUnknownType {
		t.Errorf("SendStream without a store = %v, want %s", err, protocol.StreamUnknownType)
	}
	h.Server.Close() // idempotent: the cleanup closes it again
	brokertest.WaitFor(t, "tunnel down", func() bool { return h.Client.Status().State != state.Online })
	if _, err := sendBundle(h, "x", []byte("x")); !errors.Is(err, tunnel.ErrTunnelDown) {
		t.Errorf("SendStream with the tunnel down = %v, want ErrTunnelDown", err)
	}
}

// ctxReader blocks until its context ends.
type ctxReader struct{ ctx context.Context }

func (r ctxReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}
