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
	"github.com/vaultpam/appliance/connector/protocol"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/firstboot/internal/diag"
	"github.com/vaultpam/appliance/firstboot/internal/netinfo"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

type stepState int

const (
	stepPending stepState = iota
	stepRunning
	stepOK
	stepFailed
	stepSkipped
)

func (s stepState) mark() string {
	return [...]string{"[    ]", "[ .. ]", "[ OK ]", "[FAIL]", "[ -- ]"}[s]
}

type applyStep struct {
	name   string
	state  stepState
	detail string
}

// failure kinds decide which keys the failure offers.
const (
	failOther = iota
	failDiag  // a diagnostic: edit, retry, or continue anyway
	failToken // the token was refused: type a new one
)

// applyView applies the settings step by step and shows each outcome.
type applyView struct {
	w       *wizard
	steps   []*applyStep
	running bool
	fail    string
	hint    string
	kind    int
	from    int // step to resume at after "continue anyway"
	done    *localapi.Status
}

const (
	sWrite = iota
	sNetwork
	sAddress
	sDNS
	sTCP
	sTLS
	sClock
	sConnector
	sToken
	sEnrol
)

func (w *wizard) apply(a *App) {
	v := &applyView{w: w}
	names := []string{"Write settings to /config", "Apply network settings",
		"Wait for an address on " + w.s.Interface, "DNS", "TCP", "TLS", "Clock",
		"Start the connector", "Hand over the token", "Enrolment"}
	if w.networkOnly {
		names = names[:sConnector]
	}
	for _, n := range names {
		v.steps = append(v.steps, &applyStep{name: n})
	}
	a.show(v)
	v.run(a, 0)
}

func (v *applyView) set(a *App, i int, st stepState, detail string) {
	a.post(func() {
		v.steps[i].state, v.steps[i].detail = st, detail
		var lines []string
		for _, s := range v.steps {
			lines = append(lines, s.state.mark()+" "+s.name)
		}
		a.progress(lines...)
	})
}

func (v *applyView) failAt(a *App, i int, kind int, msg, hint string) {
	v.set(a, i, stepFailed, msg)
	a.post(func() {
		for _, s := range v.steps[i+1:] {
			if s.state == stepPending {
				s.state = stepSkipped
			}
		}
		v.running, v.fail, v.hint, v.kind, v.from = false, msg, hint, kind, i+1
		if kind == failDiag {
			v.from = sConnector // continue anyway: past the checks
		}
	})
}

// run does the steps from first on in the background.
func (v *applyView) run(a *App, first int) {
	for i := first; i < len(v.steps); i++ {
		v.steps[i].state, v.steps[i].detail = stepPending, ""
	}
	v.running, v.fail, v.hint = true, "", ""
	s, token, env := v.w.s, v.w.token, a.env
	go func() {
		ctx := a.ctx
		for i := first; i < len(v.steps); i++ {
			v.set(a, i, stepRunning, "")
			ok := true
			switch i {
			case sWrite:
				files, err := s.Write(env.Root)
				if err != nil {
					v.failAt(a, i, failOther, "Writing settings: "+err.Error(), "check that the CONFIG partition is mounted on /config")
					return
				}
				v.set(a, i, stepOK, fmt.Sprintf("%d files in /config", len(files)))
			case sNetwork:
				if err := applyNetwork(ctx, env, s); err != nil {
					v.failAt(a, i, failOther, "Network: "+err.Error(), "")
					return
				}
				v.set(a, i, stepOK, "networkd, hostname, timesyncd")
			case sAddress:
				var want netip.Prefix
				if !s.DHCP {
					want, _ = netip.ParsePrefix(s.Address)
				}
				c, cancel := context.WithTimeout(ctx, env.AddressTimeout)
				p, err := netinfo.WaitAddress(c, env.Net, s.Interface, want)
				cancel()
				if err != nil {
					how := "from DHCP"
					if !s.DHCP {
						how = s.Address
					}
					v.failAt(a, i, failDiag, fmt.Sprintf("Network: no address %s on %s after %s", how, s.Interface, env.AddressTimeout),
						"check the VM's network connection and the DHCP server, or use a static address")
					return
				}
				v.set(a, i, stepOK, p.String())
			case sDNS:
				ok = v.diagnose(a, ctx, env, s)
				i = sClock
			case sTCP, sTLS, sClock:
				v.set(a, i, stepSkipped, "not checked")
			case sConnector:
				if err := startConnector(ctx, env); err != nil {
					v.failAt(a, i, failOther, "Connector: "+err.Error(), "view the logs from the health screen (L) after setup")
					return
				}
				v.set(a, i, stepOK, "running")
			case sToken:
				if token == "" {
					v.failAt(a, i, failToken, "Token: the token was already handed over; enrolment needs a new one", "press T to type a new token")
					return
				}
				err := env.Connector.SubmitToken(ctx, token)
				a.post(func() { v.w.token = "" }) // handed over: forget it
				if err != nil {
					msg, hint := apiError(err)
					v.failAt(a, i, failToken, "Token: "+msg, hint)
					return
				}
				v.set(a, i, stepOK, "accepted")
			case sEnrol:
				st, err := waitOnline(ctx, env, func(st localapi.Status) { v.set(a, i, stepRunning, state.LabelOf(st.State)) })
				if err != nil {
					msg, hint := err.Error(), st.Hint
					kind := failOther
					if st.State == state.AwaitingToken.String() || st.State == state.NeedsRecovery.String() {
						kind = failToken
						if hint == "" {
							hint = "press T to type a new token"
						}
					}
					v.failAt(a, i, kind, "Enrolment: "+msg, hint)
					return
				}
				v.set(a, i, stepOK, fmt.Sprintf("Online as %s", st.ConnectorID))
				a.post(func() { v.done = &st })
			}
			if !ok {
				return
			}
		}
		a.post(func() {
			v.running = false
			if v.w.networkOnly {
				v.done = &localapi.Status{}
			}
		})
	}()
}

// diagnose runs DNS, TCP, TLS and clock as steps sDNS..sClock.
func (v *applyView) diagnose(a *App, ctx context.Context, env Env, s settings.Settings) bool {
	cfg := diagConfig(env, s)
	idx := map[string]int{diag.StepDNS: sDNS, diag.StepTCP: sTCP, diag.StepTLS: sTLS, diag.StepClock: sClock}
	rs := diag.Run(ctx, cfg, func(r diag.Result) {
		st := stepOK
		switch {
		case r.Skipped:
			st = stepSkipped
		case !r.OK:
			st = stepFailed
		}
		v.set(a, idx[r.Step], st, strings.TrimPrefix(r.Message, r.Step+": "))
	})
	if f, bad := diag.Failed(rs); bad {
		v.failAt(a, idx[f.Step], failDiag, f.Message, "press E to go back and edit the settings, R to retry")
		return false
	}
	return true
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

func applyNetwork(ctx context.Context, env Env, s settings.Settings) error {
	// The kernel's hostname, as vaultpam-config.service sets it at boot
	// from /config/hostname.
	if err := os.WriteFile(env.path("/proc/sys/kernel/hostname"), []byte(s.Hostname), 0o644); err != nil {
		return fmt.Errorf("setting the hostname: %w", err)
	}
	for _, c := range [][]string{
		{"systemctl", "restart", "systemd-networkd"},
		{"systemctl", "restart", "systemd-timesyncd"},
	} {
		if _, err := env.Run.Output(ctx, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// startConnector restarts the connector and waits for its local API.
func startConnector(ctx context.Context, env Env) error {
	if _, err := env.Run.Output(ctx, "systemctl", "restart", "vaultpam-connector"); err != nil {
		return err
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

// apiError turns a local API error into a message and a hint for people.
func apiError(err error) (msg, hint string) {
	var e *localapi.Error
	if errors.As(err, &e) {
		return e.Message, e.Hint
	}
	return err.Error(), "check that the connector is running (logs: L on the health screen)"
}

func (v *applyView) draw(a *App) page {
	var body []screen.Line
	for _, s := range v.steps {
		line := fmt.Sprintf("  %s %-28s", s.state.mark(), s.name)
		d := s.detail
		if s.state == stepFailed {
			d = ""
		}
		body = append(body, screen.Line{{Text: line}, {Text: " " + clipText(d, screen.Cols-len(line)-2)}})
	}
	p := page{title: "Applying settings", body: body, help: "Please wait"}
	switch {
	case v.fail != "":
		p.body = append(p.body, blank())
		for _, l := range screen.WrapText(v.fail, screen.Cols-4) {
			p.body = append(p.body, bold("  "+l))
		}
		if v.hint != "" {
			p.body = append(p.body, wrap(2, "hint: "+v.hint)...)
		}
		p.msg = "Setup stopped at the failed step."
		switch v.kind {
		case failDiag:
			p.help = "E edit settings  R retry  C continue anyway"
		case failToken:
			p.help = "T new token  E edit settings  R retry"
		default:
			p.help = "E edit settings  R retry"
		}
	case v.done != nil && v.w.networkOnly:
		p.msg = "Network settings applied."
		p.help = "Enter health screen"
	case v.done != nil:
		p.body = append(p.body, blank(), bold(fmt.Sprintf("  Enrolled: %s is Online (ID %s).", firstOf(v.done.ConnectorName, v.w.s.ConnectorName), v.done.ConnectorID)))
		p.msg = "Setup is complete. The token was handed over and is not stored."
		p.help = "Enter health screen"
	}
	return p
}

func canonical(typed string) string {
	c, _ := protocol.ParseToken(typed)
	return c
}

func clipText(s string, n int) string {
	if n <= 3 {
		return ""
	}
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func (v *applyView) key(a *App, k screen.Key) {
	if v.running {
		return
	}
	if v.done != nil {
		if k.Kind == screen.KeyEnter {
			a.lock.release()
			a.lock = nil
			a.showHealth()
		}
		return
	}
	if v.fail == "" || k.Kind != screen.KeyRune {
		return
	}
	switch k.Rune {
	case 'e', 'E':
		a.show(&summaryView{w: v.w})
	case 'r', 'R':
		v.run(a, 0)
	case 'c', 'C':
		if v.kind == failDiag {
			v.run(a, v.from)
		}
	case 't', 'T':
		if v.kind == failToken {
			f := v.w.tokenForm()
			f.done = func(a *App) {
				tok := f.fields[0].value
				v.w.token = canonical(tok)
				a.show(v)
				v.run(a, sToken)
			}
			f.back = func(a *App) { a.show(v) }
			a.show(f)
		}
	}
}
