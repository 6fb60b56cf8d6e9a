// Package netinfo reads network interfaces, their link state, addresses and
// the default route through netlink, for the wizard's interface list, the
// wait for an address after apply, and the health screen.
package netinfo

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is one network interface as the console shows it.
type Link struct {
	Name    string
	MAC     string
	Up      bool // administratively up
	Carrier bool // cable/port connected (operstate up)
	Addrs   []netip.Prefix
}

// State is a short text for the link's state.
func (l Link) State() string {
	switch {
	case l.Carrier:
		return "connected"
	case l.Up:
		return "no carrier"
	default:
		return "down"
	}
}

// Source lists links and routes. Netlink is the real one; tests may fake it.
type Source interface {
	Links() ([]Link, error)
	DefaultGateway() (string, error) // "" when there is no default route
}

// Netlink reads the current network namespace through netlink.
type Netlink struct{}

// Links returns the non-loopback links sorted by name.
func (Netlink) Links() ([]Link, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var out []Link
	for _, l := range ls {
		a := l.Attrs()
		if a.Flags&net.FlagLoopback != 0 {
			continue
		}
		lk := Link{Name: a.Name, MAC: a.HardwareAddr.String(), Up: a.Flags&net.FlagUp != 0,
			Carrier: a.OperState == netlink.OperUp || (a.OperState == netlink.OperUnknown && a.Flags&net.FlagRunning != 0)}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err == nil {
			for _, ad := range addrs {
				// Link-local addresses are not shown; an IPv6 address still
				// in duplicate address detection (or failed it) cannot be
				// used yet.
				if ad.IPNet == nil || ad.IP.IsLinkLocalUnicast() || ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
					continue
				}
				ip, ok := netip.AddrFromSlice(ad.IP)
				if !ok {
					continue
				}
				ones, _ := ad.Mask.Size()
				lk.Addrs = append(lk.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
		out = append(out, lk)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DefaultGateway returns the IPv4 default route's gateway, or on an
// IPv6-only appliance the IPv6 default route's.
func (Netlink) DefaultGateway() (string, error) {
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := netlink.RouteList(nil, fam)
		if err != nil {
			return "", fmt.Errorf("listing routes: %w", err)
		}
		for _, r := range rs {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified() && isDefault(r.Dst)) && r.Gw != nil {
				return r.Gw.String(), nil
			}
		}
	}
	return "", nil
}

func isDefault(n *net.IPNet) bool { ones, _ := n.Mask.Size(); return ones == 0 }

// Find returns the link called name.
func Find(src Source, name string) (Link, bool) {
	ls, err := src.Links()
	if err != nil {
		return Link{}, false
	}
	for _, l := range ls {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// WaitAddress polls until link name has an IPv4 address (want, if valid,
// must be exactly that prefix) or ctx ends.
func WaitAddress(ctx context.Context, src Source, name string, want netip.Prefix) (netip.Prefix, error) {
	return WaitAddressOf(ctx, src, name, want, false)
}

// WaitAddressOf is WaitAddress for IPv6 when v6 is true (a usable global
// IPv6 address, or exactly want): for an IPv6-only appliance.
func WaitAddressOf(ctx context.Context, src Source, name string, want netip.Prefix, v6 bool) (netip.Prefix, error) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if l, ok := Find(src, name); ok {
			for _, a := range l.Addrs {
				if a.Addr().Is4() != v6 && (!want.IsValid() || a == want) {
					return a, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return netip.Prefix{}, ctx.Err()
		case <-t.C:
		}
	}
}
