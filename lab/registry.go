package lab

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
)

// Connectors returns a copy of the registry, in enrolment order.
func (a *Authority) Connectors() []Connector {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Connector, 0, len(a.st.Connectors))
	for _, c := range a.st.Connectors {
		out = append(out, *c)
	}
	return out
}

// Connector returns one registry entry.
func (a *Authority) Connector(id string) (Connector, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.st.connector(id)
	if c == nil {
		return Connector{}, false
	}
	return *c, true
}

// Revoke revokes every certificate of connector id; it stays in the
// registry with status revoked until a recovery token re-binds it.
func (a *Authority) Revoke(id string) error {
	a.mu.Lock()
	c := a.st.connector(id)
	if c == nil {
		a.mu.Unlock()
		return fmt.Errorf("no connector with ID %q", id)
	}
	for _, s := range c.Serials {
		if !slices.Contains(c.Revoked, s) {
			c.Revoked = append(c.Revoked, s)
		}
	}
	c.Status, c.StatusReason = StatusRevoked, "revoked by operator"
	err := a.st.save(a.cfg.StateDir)
	snap, hooks := *c, a.onChange
	a.mu.Unlock()
	for _, f := range hooks {
		f(snap)
	}
	return err
}

// SetStatus records a status change (from the tunnel broker). Only status
// changes are written to disk; a revoked connector stays revoked.
func (a *Authority) SetStatus(id, status, reason string) {
	a.mu.Lock()
	c := a.st.connector(id)
	if c == nil || c.Status == status && c.StatusReason == reason || c.Status == StatusRevoked {
		a.mu.Unlock()
		return
	}
	c.Status, c.StatusReason = status, reason
	a.st.save(a.cfg.StateDir) // best effort: the registry is rebuilt from heartbeats anyway
	snap, hooks := *c, a.onChange
	a.mu.Unlock()
	for _, f := range hooks {
		f(snap)
	}
}

// Heartbeat records a heartbeat from connector id at t (kept in memory;
// written with the next status change or at Close).
func (a *Authority) Heartbeat(id string, t time.Time, version string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.st.connector(id); c != nil {
		c.LastHeartbeat = t.UTC()
		if version != "" {
			c.Version = version
		}
	}
}

// ClockReported records connector id's estimate of the control plane's
// clock minus its own (from its heartbeats; kept in memory, written with
// the next status change or at Close).
func (a *Authority) ClockReported(id string, offset time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.st.connector(id); c != nil {
		d := localapi.Duration(offset)
		c.ClockOffset = &d
	}
}

// AddResource adds or replaces the resource r.Name.
func (a *Authority) AddResource(r Resource) error {
	var errs []error
	if r.Name == "" {
		errs = append(errs, errors.New("resource name is empty"))
	}
	if host, port, err := net.SplitHostPort(r.Address); err != nil || host == "" {
		errs = append(errs, fmt.Errorf("address %q is not HOST:PORT", r.Address))
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		errs = append(errs, fmt.Errorf("address %q has no valid port", r.Address))
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.connector(r.Connector) == nil {
		errs = append(errs, fmt.Errorf("no connector with ID %q (see `vaultpam-lab connectors`)", r.Connector))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	a.st.Resources = slices.DeleteFunc(a.st.Resources, func(x *Resource) bool { return x.Name == r.Name })
	a.st.Resources = append(a.st.Resources, &r)
	return a.st.save(a.cfg.StateDir)
}

// Resource returns the resource called name.
func (a *Authority) Resource(name string) (Resource, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.st.Resources {
		if r.Name == name {
			return *r, true
		}
	}
	return Resource{}, false
}

// Resources returns every resource.
func (a *Authority) Resources() []Resource {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Resource, 0, len(a.st.Resources))
	for _, r := range a.st.Resources {
		out = append(out, *r)
	}
	return out
}
