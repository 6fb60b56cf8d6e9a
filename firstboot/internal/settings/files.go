package settings

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vaultpam/appliance/connector/atomicfile"

	"gopkg.in/yaml.v3"
)

// Paths under the root directory (the real root "/" on the appliance, a
// temp dir in tests).
const (
	ConfigDir     = "config"
	NetworkDir    = "config/network"
	NetworkUnit   = "config/network/10-vaultpam.network"
	VLANNetdev    = "config/network/10-vaultpam-vlan.netdev"
	VLANUnit      = "config/network/20-vaultpam-vlan.network"
	HostnameFile  = "config/hostname"
	TimesyncdFile = "config/timesyncd.conf"
	ConnectorYAML = "config/connector.yaml"
	CAFile        = "config/ca.pem"
)

// pointCAFile sets control_plane_ca_file in connector.yaml's text b,
// keeping every other key.
func pointCAFile(b []byte, caFile string) ([]byte, error) {
	m := map[string]any{}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("reading connector.yaml: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	if m["control_plane_ca_file"] == caFile {
		return b, nil
	}
	m["control_plane_ca_file"] = caFile
	body, err := yaml.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Deployment-owned connector configuration, written by vaultpam-console.\n# It never holds the enrolment token.\n"), body...), nil
}

// Configured reports whether the connector has been configured under root
// (connector.yaml exists): the console then shows the health screen instead
// of the wizard.
func Configured(root string) bool {
	_, err := os.Stat(filepath.Join(root, ConnectorYAML))
	return err == nil
}

// NetworkUnitText renders the systemd-networkd .network unit.
func (s Settings) NetworkUnitText() string {
	var b strings.Builder
	b.WriteString("# Written by vaultpam-console; edit it from the console (N on the health screen).\n")
	fmt.Fprintf(&b, "[Match]\nName=%s\n\n[Network]\n", s.Interface)
	if strings.TrimSpace(s.VLAN) != "" {
		// The parent only carries the tagged frames: the addresses are
		// the VLAN interface's (VLANUnitText).
		fmt.Fprintf(&b, "VLAN=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n", s.LinkName())
		return b.String()
	}
	s.networkBody(&b)
	return b.String()
}

// TimesyncdText renders timesyncd.conf; with no NTP servers it leaves the
// choice to DHCP and the distribution's fallback.
func (s Settings) TimesyncdText() string {
	var b strings.Builder
	b.WriteString("# Written by vaultpam-console.\n[Time]\n")
	if n := SplitList(s.NTP); len(n) > 0 {
		fmt.Fprintf(&b, "NTP=%s\n", strings.Join(n, " "))
	}
	return b.String()
}

// ConnectorYAMLText renders connector.yaml from old (the file's previous
// contents, nil if none), replacing the keys the console owns and keeping
// every other key (allowed_targets, …) as the operator left it. caFile is
// the CA bundle path to reference ("" = system roots).
func (s Settings) ConnectorYAMLText(old []byte, caFile string) ([]byte, error) {
	m := map[string]any{}
	if len(bytes.TrimSpace(old)) > 0 {
		if err := yaml.Unmarshal(old, &m); err != nil {
			return nil, fmt.Errorf("reading existing connector.yaml: %w", err)
		}
		if m == nil {
			m = map[string]any{}
		}
	}
	m["control_plane_url"] = strings.TrimRight(strings.TrimSpace(s.ControlPlaneURL), "/")
	m["connector_name"] = s.ConnectorName
	if p := strings.TrimSpace(s.Proxy); p != "" {
		m["proxy_url"] = p
	} else {
		delete(m, "proxy_url")
	}
	if caFile != "" {
		m["control_plane_ca_file"] = caFile
	}
	body, err := yaml.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Deployment-owned connector configuration, written by vaultpam-console.\n# It never holds the enrolment token.\n"), body...), nil
}

// Write stores the settings under root: the networkd unit, hostname,
// timesyncd.conf and connector.yaml, each atomically. It returns the paths
// written (relative to root).
func (s Settings) Write(root string) ([]string, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	ca := ""
	if _, err := os.Stat(filepath.Join(root, CAFile)); err == nil {
		ca = "/" + CAFile
	}
	old, err := os.ReadFile(filepath.Join(root, ConnectorYAML))
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("reading connector.yaml: %w", err)
	}
	cy, err := s.ConnectorYAMLText(old, ca)
	if err != nil {
		return nil, err
	}
	files := []struct {
		path string
		body []byte
	}{
		{VLANNetdev, []byte(s.VLANNetdevText())},
		{VLANUnit, []byte(s.VLANUnitText())},
		{NetworkUnit, []byte(s.NetworkUnitText())},
		{HostnameFile, []byte(s.Hostname + "\n")},
		{TimesyncdFile, []byte(s.TimesyncdText())},
		{ConnectorYAML, cy}, // last: its presence means "configured"
	}
	var done []string
	if strings.TrimSpace(s.CACert) != "" {
		certs, err := ParseCABundle([]byte(s.CACert))
		if err != nil {
			return nil, err
		}
		if _, err := AddCA(root, certs); err != nil {
			return nil, fmt.Errorf("writing the CA bundle: %w", err)
		}
		done = append(done, CAFile)
		if ca == "" {
			ca = "/" + CAFile
			if cy, err = s.ConnectorYAMLText(old, ca); err != nil {
				return nil, err
			}
			files[len(files)-1].body = cy
		}
	}
	for _, f := range files {
		if len(f.body) == 0 {
			// A unit no longer wanted (no VLAN now): removed, so networkd
			// does not keep a VLAN the operator took away.
			if err := os.Remove(filepath.Join(root, f.path)); err != nil && !os.IsNotExist(err) {
				return done, fmt.Errorf("removing %s: %w", f.path, err)
			}
			continue
		}
		if err := atomicfile.Write(filepath.Join(root, f.path), f.body, atomicfile.Options{Perm: 0o644, MkdirAll: true}); err != nil {
			return done, err
		}
		done = append(done, f.path)
	}
	return done, nil
}

// Load reads back what Write stored under root, for editing. Missing files
// leave Default values.
func Load(root string) Settings {
	s := Default()
	if b, err := os.ReadFile(filepath.Join(root, NetworkUnit)); err == nil {
		vlan, err := os.ReadFile(filepath.Join(root, VLANUnit))
		if err != nil {
			vlan = nil
		}
		netdev, _ := os.ReadFile(filepath.Join(root, VLANNetdev))
		parseNetworkUnits(&s, b, vlan, netdev)
	}
	if b, err := os.ReadFile(filepath.Join(root, HostnameFile)); err == nil {
		s.Hostname = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(root, ConnectorYAML)); err == nil {
		var m struct {
			URL   string `yaml:"control_plane_url"`
			Name  string `yaml:"connector_name"`
			Proxy string `yaml:"proxy_url"`
		}
		if yaml.Unmarshal(b, &m) == nil {
			if m.URL != "" {
				s.ControlPlaneURL = m.URL
			}
			s.ConnectorName = m.Name
			s.Proxy = m.Proxy
		}
	}
	return s
}
