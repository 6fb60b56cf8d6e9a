package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/vaultpam/appliance/tests/controlplane"
)

// labRuntime holds what serve runs next to the authority: the tunnel
// broker and the routing behind connect. Without a broker the tunnel is
// refused and connect reports that.
type labRuntime struct {
	a   *controlplane.Authority
	log *slog.Logger
}

func newLabRuntime(a *controlplane.Authority, hb time.Duration, log *slog.Logger) (*labRuntime, error) {
	return &labRuntime{a: a, log: log}, nil
}

func (l *labRuntime) tunnel() controlplane.TunnelHandler { return nil }

func (l *labRuntime) adminRoutes(mux *http.ServeMux) {}

func (l *labRuntime) Close() error { return nil }

func cmdResourcesAdd(env Env, args []string) error {
	fs := newFlags(env, "resources add")
	dir := fs.String("state", "", "lab state directory")
	name := fs.String("name", "", "resource name")
	addr := fs.String("address", "", "target HOST:PORT as the connector dials it")
	conn := fs.String("connector", "", "ID of the connector that reaches it")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	a, done, err := admin(*dir)
	if err != nil {
		return err
	}
	defer done()
	return a.AddResource(controlplane.Resource{Name: *name, Address: *addr, Connector: *conn})
}
