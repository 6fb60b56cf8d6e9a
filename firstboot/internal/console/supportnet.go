package console

// The support bundle's network parts as the console makes them. The
// collector asks for `ip address show` and `ip route show table all`, but
// ip(8) cannot run in the console's unit: it drops capabilities at start
// (capset), which the unit's system-call filter refuses, and then exits 1
// without a word. The console reads the same facts over netlink.

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ipCommand answers the collector's ip(8) commands from netlink; ok is
// false for a command it does not know.
func ipCommand(args []string) (out []byte, ok bool, err error) {
	switch {
	case slices.Equal(args, []string{"address", "show"}):
		out, err = addressText()
	case slices.Equal(args, []string{"route", "show", "table", "all"}):
		out, err = routeText(netlink.FAMILY_V4)
	case slices.Equal(args, []string{"-6", "route", "show", "table", "all"}):
		out, err = routeText(netlink.FAMILY_V6)
	default:
		return nil, false, nil
	}
	return out, true, err
}

const netlinkNote = "# read over netlink by vaultpam-console (ip(8) cannot run under its system-call filter)\n"

// addressText lists every link and its addresses, like `ip address show`.
func addressText() ([]byte, error) {
	ls, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links over netlink: %w", err)
	}
	var b strings.Builder
	b.WriteString(netlinkNote)
	for _, l := range ls {
		a := l.Attrs()
		fmt.Fprintf(&b, "%d: %s: <%s> mtu %d state %s\n", a.Index, a.Name, strings.ToUpper(strings.ReplaceAll(a.Flags.String(), "|", ",")), a.MTU, a.OperState)
		if len(a.HardwareAddr) > 0 {
			fmt.Fprintf(&b, "    link/%s %s\n", l.Type(), a.HardwareAddr)
		}
		addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			fmt.Fprintf(&b, "    addresses: %v\n", err)
			continue
		}
		for _, ad := range addrs {
			fam := "inet"
			if ad.IP.To4() == nil {
				fam = "inet6"
			}
			fmt.Fprintf(&b, "    %s %s scope %s", fam, ad.IPNet, scopeName(ad.Scope))
			if ad.Broadcast != nil {
				fmt.Fprintf(&b, " brd %s", ad.Broadcast)
			}
			if ad.ValidLft > 0 && ad.ValidLft != 0xffffffff {
				fmt.Fprintf(&b, " valid_lft %ds", ad.ValidLft)
			}
			b.WriteString("\n")
		}
	}
	return []byte(b.String()), nil
}

// routeText lists the routes of every table, like `ip route show table all`.
func routeText(family int) ([]byte, error) {
	rs, err := netlink.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing routes over netlink: %w", err)
	}
	names := map[int]string{}
	dev := func(i int) string {
		if n, ok := names[i]; ok {
			return n
		}
		n := fmt.Sprint(i)
		if l, err := netlink.LinkByIndex(i); err == nil {
			n = l.Attrs().Name
		}
		names[i] = n
		return n
	}
	var b strings.Builder
	b.WriteString(netlinkNote)
	for _, r := range rs {
		dst := "default"
		if r.Dst != nil && !isDefault(r.Dst) {
			dst = r.Dst.String()
		}
		if r.Type == unix.RTN_LOCAL {
			dst = "local " + dst
		}
		b.WriteString(dst)
		if r.Gw != nil {
			fmt.Fprintf(&b, " via %s", r.Gw)
		}
		if r.LinkIndex > 0 {
			fmt.Fprintf(&b, " dev %s", dev(r.LinkIndex))
		}
		if r.Table != unix.RT_TABLE_MAIN {
			fmt.Fprintf(&b, " table %s", tableName(r.Table))
		}
		fmt.Fprintf(&b, " proto %s scope %s", protoName(int(r.Protocol)), scopeName(int(r.Scope)))
		if r.Src != nil {
			fmt.Fprintf(&b, " src %s", r.Src)
		}
		if r.Priority > 0 {
			fmt.Fprintf(&b, " metric %d", r.Priority)
		}
		b.WriteString("\n")
	}
	return []byte(b.String()), nil
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}

func tableName(t int) string {
	switch t {
	case unix.RT_TABLE_LOCAL:
		return "local"
	case unix.RT_TABLE_DEFAULT:
		return "default"
	}
	return fmt.Sprint(t)
}

func protoName(p int) string {
	switch p {
	case unix.RTPROT_KERNEL:
		return "kernel"
	case unix.RTPROT_BOOT:
		return "boot"
	case unix.RTPROT_STATIC:
		return "static"
	case unix.RTPROT_DHCP:
		return "dhcp"
	case unix.RTPROT_RA:
		return "ra"
	}
	return fmt.Sprint(p)
}

func scopeName(s int) string {
	switch netlink.Scope(s) {
	case netlink.SCOPE_UNIVERSE:
		return "global"
	case netlink.SCOPE_LINK:
		return "link"
	case netlink.SCOPE_HOST:
		return "host"
	case netlink.SCOPE_SITE:
		return "site"
	}
	return fmt.Sprint(s)
}
