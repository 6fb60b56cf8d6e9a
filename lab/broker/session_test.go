package broker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/vaultpam/appliance/lab/broker"
	"github.com/vaultpam/appliance/lab/broker/brokertest"
)

// TestRoutingUnknownConnector: a connector that never connected is refused.
func TestRoutingUnknownConnector(t *testing.T) {
	l := brokertest.NewHarness(t, brokertest.Options{NoRun: true})
	_, err := l.Broker.Dial(context.Background(), "c1", l.Echo.Addr)
	if !errors.Is(err, broker.ErrConnectorOffline) {
		t.Fatalf("Dial via never-connected connector = %v, want ErrConnectorOffline", err)
	}
}
