// Package config loads the connector's deployment-owned configuration: a
// YAML file at PAM_AGENT_CONFIG (/config/connector.yaml on the appliance)
// with environment overrides for Docker and Kubernetes (PAM_* variables).
//
// Configuration is kept apart from runtime identity (package identity) and
// must never hold a secret: Load refuses enrolment tokens, PEM private
// keys, passwords and fields named like secrets, naming the field and
// saying where the secret belongs instead.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the connector configuration (ARCHITECTURE.md, "Configuration and identity").
type Config struct {
	// ControlPlaneURL is https://HOST[:PORT] of the control plane. Required.
	ControlPlaneURL string `yaml:"control_plane_url"`
	// ControlPlaneCAFile is a PEM bundle that verifies the control plane;
	// empty means the system roots. It must hold certificates only.
	ControlPlaneCAFile string `yaml:"control_plane_ca_file"`
	// ConnectorName is how the connector shows in the dashboard. Required.
	ConnectorName string `yaml:"connector_name"`
	// AllowedTargets limits the targets sessions may reach: CIDRs, IPs,
	// host names and host:port entries. Empty allows every target.
	AllowedTargets []string `yaml:"allowed_targets"`
	// ProxyURL is an outbound HTTP CONNECT proxy (http://host:port).
	ProxyURL string `yaml:"proxy_url"`
	// DrainTimeout is how long SIGTERM waits for sessions to end; 0 means
	// DefaultDrainTimeout.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// UpdateWindow is when the appliance may reboot into an installed
	// update (UTC); zero means at once.
	UpdateWindow Window `yaml:"update_window"`
}

// DefaultDrainTimeout is the drain grace period when none is configured.
const DefaultDrainTimeout = 30 * time.Second

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30s", n.Value)
	}
	*d = Duration(v)
	return nil
}

// DefaultConfig returns a Config with the defaults filled in; the required
// fields are still empty.
func DefaultConfig() Config {
	return Config{DrainTimeout: Duration(DefaultDrainTimeout)}
}

// Environment variables that override file values.
const (
	EnvConfig          = "PAM_AGENT_CONFIG"
	EnvDataDir         = "PAM_AGENT_DATA_DIR"
	EnvSocket          = "PAM_AGENT_SOCKET"
	EnvToken           = "PAM_ENROLMENT_TOKEN"
	EnvControlPlaneURL = "PAM_CONTROL_PLANE_URL"
	EnvCAFile          = "PAM_CONTROL_PLANE_CA_FILE"
	EnvConnectorName   = "PAM_CONNECTOR_NAME"
	EnvAllowedTargets  = "PAM_ALLOWED_TARGETS" // comma-separated
	EnvProxyURL        = "PAM_PROXY_URL"
	EnvDrainTimeout    = "PAM_DRAIN_TIMEOUT"
	EnvUpdateWindow    = "PAM_UPDATE_WINDOW"
)

// Load reads the YAML file at path ("" means no file: environment only),
// applies the environment overrides from getenv (nil means os.Getenv) and
// validates the result. Every problem is reported, joined; nothing is
// written anywhere.
func Load(path string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := DefaultConfig()
	var errs []error
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return c, fmt.Errorf("config file %s does not exist (set %s to the right path, or run the console's setup)", path, EnvConfig)
		case err != nil:
			return c, fmt.Errorf("reading config: %w", err)
		}
		if err := Parse(b, &c); err != nil {
			var se *SecretError
			if errors.As(err, &se) {
				// Only the secrets: other checks would run on a half-read
				// file and could echo the secret's value.
				return c, err
			}
			errs = append(errs, err)
		}
	}
	errs = append(errs, c.applyEnv(getenv))
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// Parse decodes YAML b into c: unknown fields and secrets are errors, each
// naming its field.
func Parse(b []byte, c *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fmt.Errorf("config is not valid YAML: %w", err)
	}
	if len(root.Content) == 0 {
		return nil // empty file: everything from the environment
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("config must be a mapping of field: value (line %d)", doc.Line)
	}
	if errs := secretsInNode("", doc); len(errs) > 0 {
		return &SecretError{errs} // do not go further with a secret in hand
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %w (known fields: control_plane_url, control_plane_ca_file, connector_name, allowed_targets, proxy_url, drain_timeout, update_window)", err)
	}
	return nil
}

func (c *Config) applyEnv(getenv func(string) string) error {
	var errs []error
	str := func(env string, dst *string) {
		if v := getenv(env); v != "" {
			if err := secretInValue(env, v); err != nil && env != EnvProxyURL {
				errs = append(errs, err)
				return
			}
			*dst = v
		}
	}
	str(EnvControlPlaneURL, &c.ControlPlaneURL)
	str(EnvCAFile, &c.ControlPlaneCAFile)
	str(EnvConnectorName, &c.ConnectorName)
	str(EnvProxyURL, &c.ProxyURL)
	if v := getenv(EnvAllowedTargets); v != "" {
		c.AllowedTargets = nil
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				c.AllowedTargets = append(c.AllowedTargets, t)
			}
		}
	}
	if v := getenv(EnvUpdateWindow); v != "" {
		w, err := ParseWindow(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvUpdateWindow, err))
		} else {
			c.UpdateWindow = w
		}
	}
	if v := getenv(EnvDrainTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration like 30s", EnvDrainTimeout, v))
		} else {
			c.DrainTimeout = Duration(d)
		}
	}
	return errors.Join(errs...)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate reports every problem with c, joined; each names its field.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ControlPlaneURL == "" {
		add("control_plane_url: required (the https:// address of the VaultPAM control plane)")
	} else if u, err := url.Parse(c.ControlPlaneURL); err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" {
		add("control_plane_url: %q is not an https://HOST[:PORT] URL", c.ControlPlaneURL)
	} else if u.User != nil {
		add("control_plane_url: must not contain credentials")
	} else if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		add("control_plane_url: %q must be only scheme, host and port", c.ControlPlaneURL)
	}
	if c.ConnectorName == "" {
		add("connector_name: required (letters, digits, dot, dash, underscore; up to 63)")
	} else if !nameRE.MatchString(c.ConnectorName) {
		add("connector_name: %q must be letters, digits, dot, dash or underscore (up to 63, starting with a letter or digit)", c.ConnectorName)
	}
	if c.ControlPlaneCAFile != "" {
		if err := checkCAFile(c.ControlPlaneCAFile); err != nil {
			errs = append(errs, fmt.Errorf("control_plane_ca_file: %w", err))
		}
	}
	for i, t := range c.AllowedTargets {
		if err := checkTarget(t); err != nil {
			add("allowed_targets[%d]: %q %v", i, t, err)
		}
	}
	if c.ProxyURL != "" {
		if u, err := url.Parse(c.ProxyURL); err != nil || u.Scheme != "http" || u.Host == "" {
			add("proxy_url: %q is not an http://HOST:PORT URL (HTTP CONNECT proxies only)", c.ProxyURL)
		}
	}
	if c.DrainTimeout < 0 {
		add("drain_timeout: must not be negative")
	}
	return errors.Join(errs...)
}

// Drain returns the drain grace period.
func (c *Config) Drain() time.Duration {
	if c.DrainTimeout == 0 {
		return DefaultDrainTimeout
	}
	return time.Duration(c.DrainTimeout)
}

// checkTarget accepts a CIDR, an IP, a host name, or any of those (except
// CIDR) with :port.
func checkTarget(t string) error {
	if _, err := netip.ParsePrefix(t); err == nil {
		return nil
	}
	host := t
	if h, p, err := net.SplitHostPort(t); err == nil {
		host = h
		if n, err := net.LookupPort("tcp", p); err != nil || n == 0 {
			return errors.New("has no valid port")
		}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if !hostRE.MatchString(host) {
		return errors.New("is not a CIDR, IP, host name or host:port")
	}
	return nil
}

var hostRE = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)

func checkCAFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, err)
	}
	if hasPrivateKey(string(b)) {
		return fmt.Errorf("%s contains a private key; it must hold only the CA certificates (remove the key and keep it off this machine)", path)
	}
	if !strings.Contains(string(b), "-----BEGIN CERTIFICATE-----") {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}
