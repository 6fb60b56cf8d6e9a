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
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/allowlist"
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
	// IP:port and hostname:port entries (package allowlist). Empty allows
	// every target.
	AllowedTargets []string `yaml:"allowed_targets"`
	// ProxyURL is an outbound HTTP CONNECT proxy (http://host:port).
	ProxyURL string `yaml:"proxy_url"`
	// DrainTimeout is how long SIGTERM waits for sessions to end; 0 means
	// DefaultDrainTimeout.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// UpdateWindow is when the appliance may reboot into an installed
	// update (UTC); zero means at once.
	UpdateWindow Window `yaml:"update_window"`
	// MetricsListen is IP:PORT where the connector serves GET /metrics
	// over plain HTTP: the one optional inbound port. Empty (the default)
	// serves the metrics on the local API socket only.
	MetricsListen string `yaml:"metrics_listen"`
}

// DefaultDrainTimeout is the drain grace period when none is configured.
const DefaultDrainTimeout = 30 * time.Second

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

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
	EnvMetricsListen   = "PAM_METRICS_LISTEN"
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
	str(EnvMetricsListen, &c.MetricsListen)
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
			errs = append(errs, fmt.Errorf("%s: not a duration like 30s or 2m", EnvDrainTimeout))
		} else {
			c.DrainTimeout = Duration(d)
		}
	}
	return errors.Join(errs...)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Validate reports every problem with c, joined; each names its field and
// says what is wrong without repeating the value (it could be a token or
// a password pasted into the wrong field).
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ControlPlaneURL == "" {
		add("control_plane_url: required (the https:// address of the VaultPAM control plane)")
	} else if u, err := url.Parse(c.ControlPlaneURL); err != nil || u.Host == "" || u.Hostname() == "" {
		add("control_plane_url: is not an https://HOST[:PORT] URL")
	} else if u.User != nil {
		add("control_plane_url: must not contain credentials (user@ or user:password@)")
	} else if u.Scheme != "https" {
		add("control_plane_url: must start with https:// (the connector talks to the control plane over TLS only)")
	} else if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		add("control_plane_url: must be only https://HOST[:PORT], without a path or query")
	}
	if c.ConnectorName == "" {
		add("connector_name: required (letters, digits, dot, dash, underscore; up to 63)")
	} else if !nameRE.MatchString(c.ConnectorName) {
		add("connector_name: must be letters, digits, dot, dash or underscore (up to 63, starting with a letter or digit)")
	}
	if c.ControlPlaneCAFile != "" {
		if err := checkCAFile(c.ControlPlaneCAFile); err != nil {
			errs = append(errs, fmt.Errorf("control_plane_ca_file: %w", err))
		}
	}
	if _, err := allowlist.Parse(c.AllowedTargets); err != nil {
		// The tunnel's own parser: what it would refuse is refused here,
		// at load, before a token is used.
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var ee *allowlist.EntryError
			if errors.As(e, &ee) {
				add("allowed_targets[%d]: %v", ee.Index, ee.Err)
			} else {
				add("allowed_targets: %v", e)
			}
		}
	}
	if c.ProxyURL != "" {
		if u, err := url.Parse(c.ProxyURL); err != nil || u.Scheme != "http" || u.Host == "" {
			add("proxy_url: is not an http://HOST:PORT URL (HTTP CONNECT proxies only)")
		}
	}
	if c.DrainTimeout < 0 {
		add("drain_timeout: must not be negative")
	}
	if c.MetricsListen != "" {
		if err := checkMetricsListen(c.MetricsListen); err != nil {
			add("metrics_listen: %v", err)
		}
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

// checkMetricsListen accepts IP:PORT with an IP literal and a port from 1
// to 65535. Every interface must be asked for by name (0.0.0.0:9100,
// [::]:9100): ":9100" is refused, so the one inbound port is never opened
// on every interface by accident; a host name is refused, so what the
// connector binds does not depend on DNS at start.
func checkMetricsListen(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not IP:PORT (e.g. 192.0.2.10:9100, [2001:db8::10]:9100)", v)
	}
	if host == "" {
		return fmt.Errorf("%q has no address: write the interface's IP, or 0.0.0.0:%s / [::]:%s to listen on every interface", v, port, port)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Errorf("%q: %q is not an IP address (host names are not accepted here)", v, host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: the port must be a number from 1 to 65535", v)
	}
	return nil
}

func checkCAFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read the file: %v", pathless(err))
	}
	if hasPrivateKey(string(b)) {
		return errors.New("the file contains a private key; it must hold only the CA certificates (remove the key and keep it off this machine)")
	}
	if !strings.Contains(string(b), "-----BEGIN CERTIFICATE-----") {
		return errors.New("the file holds no PEM certificate")
	}
	return nil
}

// pathless is an *fs.PathError's cause without the path (the path is a
// configuration value; the field name says which file it is).
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
