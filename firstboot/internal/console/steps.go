package console

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/diag"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/privileged"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// networkSteps is the pipeline of "edit network" (and the first part of
// setup): settings written, network applied, an address, the checks. It
// never touches the connector or a token.
func networkSteps(iface string) []step {
	return append([]step{writeStep(), networkStep(), addressStep(iface)}, checkSteps()...)
}

func writeStep() step {
	return step{title: "Write settings to /config", run: func(ctx context.Context, r *applyRun) (string, error) {
		files, err := r.env.Privileged.WriteSettings(ctx, r.s)
		if err != nil {
			msg, hint := privilegedError(err)
			return "", &stepFailure{msg: "Writing settings: " + msg, hint: orDefault(hint, "check that the CONFIG partition is mounted on /config")}
		}
		return fmt.Sprintf("%d files in /config", len(files)), nil
	}}
}

func networkStep() step {
	return step{title: "Apply network settings", run: func(ctx context.Context, r *applyRun) (string, error) {
		if err := r.env.Privileged.ApplyNetwork(ctx); err != nil {
			msg, hint := privilegedError(err)
			return "", &stepFailure{msg: "Network: " + msg, hint: hint}
		}
		return "networkd, hostname, timesyncd", nil
	}}
}

func addressStep(iface string) step {
	return step{title: "Wait for an address on " + iface, run: func(ctx context.Context, r *applyRun) (string, error) {
		s, env := r.s, r.env
		link := s.LinkName()
		var want netip.Prefix
		how, v6 := "from DHCP", false
		switch {
		case s.StaticIPv4():
			want, _ = netip.ParsePrefix(s.Address)
			how = s.Address
		case s.NoIPv4 && s.IPv6 == settings.IPv6Static:
			want, _ = netip.ParsePrefix(s.Address6)
			how, v6 = s.Address6, true
		case s.NoIPv4:
			how, v6 = "from "+s.IPv6, true
		}
		c, cancel := context.WithTimeout(ctx, env.AddressTimeout)
		p, err := netinfo.WaitAddressOf(c, env.Net, link, want, v6)
		cancel()
		if err != nil {
			hint := "check the VM's network connection and the DHCP server, or use a static address"
			if s.VLAN != "" {
				hint = fmt.Sprintf("check that the port group passes VLAN %s tagged (VGT, trunking) and %s", s.VLAN, hint)
			}
			return "", &stepFailure{kind: failCheck, msg: fmt.Sprintf("Network: no address %s on %s after %s", how, link, env.AddressTimeout),
				hint: hint}
		}
		return p.String(), nil
	}}
}

// checkSteps makes one step of each diagnostic check (DNS, TCP, TLS,
// clock); they share one diag.Probe per run.
func checkSteps() []step {
	var out []step
	for _, c := range diag.Checks() {
		out = append(out, step{title: c.Name, check: true, run: func(ctx context.Context, r *applyRun) (string, error) {
			if r.probe == nil {
				r.probe = diag.NewProbe(diagConfig(r.env, r.s))
			}
			res := c.Run(ctx, r.probe)
			detail := strings.TrimPrefix(res.Message, res.Step+": ")
			switch {
			case res.Skipped:
				return "", skipped{detail}
			case !res.OK && res.Untrusted && res.Root() != nil:
				// No hint: the chain and its root's fingerprint take the room,
				// and the key help offers T.
				return "", &stepFailure{kind: failCheck, msg: res.Message, untrusted: &res}
			case !res.OK:
				return "", &stepFailure{kind: failCheck, msg: res.Message, hint: "press E to go back and edit the settings, R to retry"}
			}
			return detail, nil
		}})
	}
	return out
}

func connectorStep() step {
	return step{title: "Start the connector", run: func(ctx context.Context, r *applyRun) (string, error) {
		if err := startConnector(ctx, r.env); err != nil {
			return "", &stepFailure{msg: "Connector: " + err.Error(), hint: "view the logs from the health screen (L) after setup"}
		}
		return "running", nil
	}}
}

func diagConfig(env Env, s settings.Settings) diag.Config {
	cfg := diag.Config{ControlPlaneURL: s.ControlPlaneURL, DNS: settings.SplitList(s.DNS), Proxy: s.Proxy,
		Now: env.Now, Timeout: env.StepTimeout}
	if b, err := os.ReadFile(env.path("/" + settings.CAFile)); err == nil {
		pool := x509.NewCertPool()
		if pool.AppendCertsFromPEM(b) {
			cfg.RootCAs = pool
		}
	}
	return cfg
}

// startConnector restarts the connector and waits for its local API.
func startConnector(ctx context.Context, env Env) error {
	if err := env.Privileged.RestartConnector(ctx); err != nil {
		msg, _ := privilegedError(err)
		return errors.New(msg)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := env.Connector.Status(c)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the connector did not answer on its local socket within 30s: %w", err)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// waitOnline polls the connector's status until it is Online, gives up
// (needs recovery, or waiting for a token again with a reason), or the
// enrolment timeout passes.
func waitOnline(ctx context.Context, env Env, progress func(localapi.Status)) (localapi.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, env.EnrolTimeout)
	defer cancel()
	var last localapi.Status
	for {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := env.Connector.Status(c)
		cancel()
		if err == nil {
			last = st
			progress(st)
			switch {
			case st.State == state.Online.String():
				return st, nil
			case st.State == state.NeedsRecovery.String(),
				st.State == state.AwaitingToken.String() && st.Reason != "":
				return st, errors.New(orDefault(st.Reason, state.LabelOf(st.State)))
			}
		}
		select {
		case <-ctx.Done():
			why := "no answer from the connector"
			if last.State != "" {
				why = "still " + state.LabelOf(last.State)
				if last.Reason != "" {
					why += ": " + last.Reason
				}
			}
			return last, fmt.Errorf("not Online after %s (%s)", env.EnrolTimeout, why)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// privilegedError splits an error from the helper into a message and a
// hint for people.
func privilegedError(err error) (msg, hint string) {
	var e *privileged.Error
	if errors.As(err, &e) {
		return e.Message, e.Hint
	}
	return err.Error(), ""
}

// apiError turns a local API error into a message and a hint for people.
func apiError(err error) (msg, hint string) {
	var e *localapi.Error
	if errors.As(err, &e) {
		return e.Message, e.Hint
	}
	return err.Error(), "check that the connector is running (logs: L on the health screen)"
}
