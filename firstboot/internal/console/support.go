package console

// The support key (G): collect a support bundle (package support: status,
// diagnostics, image, journal, network; every secret redacted), encrypt it
// to the vendor's key the control plane announced, and hand it to the
// connector, which sends it through its tunnel. The console collects it
// itself, unprivileged: the journal through its group systemd-journal, the
// connector's and the updater's status through the group vaultpam, the
// device-mapper status through its helper, the addresses and routes over
// netlink (supportnet.go). Only `veritysetup status` needs more (root); its
// part says so.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/state"
	"github.com/vaultpam/appliance/connector/support"
	"github.com/vaultpam/appliance/firstboot/internal/diag"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// supportPhase is where a support bundle is. Transitions:
// checking → collecting → encrypting → sending → sent, and from checking
// or sending to tunnelDown (the tunnel or the connector is down) or, from
// any, to failed.
type supportPhase int

const (
	supportChecking supportPhase = iota
	supportCollecting
	supportEncrypting
	supportSending
	supportSent
	supportTunnelDown
	supportFailed
)

func (p supportPhase) String() string {
	return [...]string{"checking", "collecting", "encrypting", "sending", "sent", "tunnel down", "failed"}[p]
}

func (p supportPhase) running() bool { return p < supportSent }

// supportView shows a support bundle's progress and its end.
type supportView struct {
	phase supportPhase
	// progress
	parts int    // sources read so far
	what  string // the source being read
	size  int    // encrypted bytes
	// the end
	rec       localapi.SupportReceipt
	redacted  int
	nparts    int
	why, hint string // tunnelDown, failed
}

func newSupportView(a *App) *supportView {
	v := &supportView{}
	v.start(a)
	return v
}

// supportResult is what the background work ends with.
type supportResult struct {
	phase     supportPhase
	rec       localapi.SupportReceipt
	size      int
	parts     int
	redacted  int
	why, hint string
}

func (v *supportView) start(a *App) {
	*v = supportView{phase: supportChecking}
	goDo(a, func(ctx context.Context) supportResult {
		return v.run(ctx, a)
	}, func(r supportResult) {
		v.phase, v.rec, v.size, v.nparts, v.redacted, v.why, v.hint = r.phase, r.rec, r.size, r.parts, r.redacted, r.why, r.hint
	})
}

// down reports that the tunnel (or the connector) is down.
func down(why string) supportResult {
	return supportResult{phase: supportTunnelDown, why: why,
		hint: "D runs the diagnostics towards the control plane; once the connector is Online again, G sends the bundle."}
}

// run does the work in the background; progress goes through a.post.
func (v *supportView) run(ctx context.Context, a *App) supportResult {
	set := func(fn func()) { a.post(fn) }
	stCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := a.env.Connector.Status(stCtx)
	cancel()
	if err != nil {
		return down("The connector does not answer, so nothing can go through its tunnel: " + err.Error())
	}
	if st.State != state.Online.String() && st.State != state.Draining.String() {
		why := "The tunnel to the control plane is down: the connector is " + state.LabelOf(st.State)
		if st.Reason != "" {
			why += " (" + st.Reason + ")"
		}
		return down(why + ".")
	}
	up, ok := a.env.Connector.(SupportUploader)
	if !ok {
		return supportResult{phase: supportFailed, why: "This console's connector client cannot send support bundles."}
	}
	if st.SupportRecipient == "" {
		return supportResult{phase: supportFailed,
			why:  "No support-bundle key is known yet: the control plane announces it when the tunnel comes up.",
			hint: "wait until the connector has been Online for a moment, then press G again"}
	}
	set(func() { v.phase = supportCollecting })
	step := func(what string) {
		set(func() { v.parts++; v.what = what })
	}
	opt := a.supportOptions(st, step)
	b, err := support.Collect(ctx, opt)
	if err != nil {
		return supportResult{phase: supportFailed, why: "Collecting the support bundle: " + err.Error()}
	}
	res := supportResult{parts: len(b.Parts)}
	for _, p := range b.Manifest.Parts {
		res.redacted += p.Redactions
	}
	set(func() { v.phase = supportEncrypting })
	ct, err := b.Encrypt(st.SupportRecipient)
	if err != nil {
		res.phase, res.why = supportFailed, "Encrypting the support bundle: "+err.Error()
		return res
	}
	res.size = len(ct)
	set(func() { v.phase, v.size = supportSending, len(ct) })
	name := "support-" + firstOf(st.ConnectorName, "connector") + "-" + b.Manifest.CreatedAt.Format("20060102T150405Z") + ".tar.gz.age"
	upCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	rec, err := up.UploadSupportBundle(upCtx, name, ct)
	var le *localapi.Error
	switch {
	case err == nil:
		res.phase, res.rec = supportSent, rec
	case errors.As(err, &le) && le.Code == localapi.CodeTunnelDown:
		r := down("The tunnel to the control plane went down while sending: " + le.Message)
		r.size, r.parts = res.size, res.parts
		return r
	case errors.As(err, &le):
		res.phase, res.why, res.hint = supportFailed, "The control plane did not take the bundle: "+le.Message, le.Hint
	default:
		r := down("Sending through the connector failed: " + err.Error())
		r.size, r.parts = res.size, res.parts
		return r
	}
	return res
}

// supportOptions are the collector's sources as the console reaches them;
// step is called as each source is read.
func (a *App) supportOptions(st localapi.Status, step func(what string)) support.Options {
	env := a.env
	opt := support.DefaultOptions()
	opt.ConfigFile = env.path("/" + settings.ConnectorYAML)
	opt.NetworkDir = env.path("/config/network")
	opt.ResolvConf = env.path("/etc/resolv.conf")
	opt.OSRelease = env.path("/etc/os-release")
	opt.Cmdline = env.path("/proc/cmdline")
	opt.Forbidden = []string{env.path("/data")}
	opt.ConnectorID, opt.ConnectorName, opt.Version = st.ConnectorID, st.ConnectorName, st.Version
	opt.Hostname = settings.Load(env.Root).Hostname // the appliance's (/config/hostname)
	if opt.Hostname == "" {
		opt.Hostname, _ = os.Hostname()
	}
	opt.Now = env.Now
	opt.Status = func(ctx context.Context) ([]byte, error) {
		step("the connector's status")
		return json.MarshalIndent(st, "", "  ")
	}
	opt.Image = func(ctx context.Context) ([]byte, error) {
		step("the image updater's status")
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		im, err := env.Updater.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("the image updater does not answer: %w", err)
		}
		return json.MarshalIndent(im, "", "  ")
	}
	opt.Diagnostics = func(ctx context.Context) ([]byte, error) {
		step("diagnostics (DNS, TCP, TLS, clock)")
		var b strings.Builder
		for _, r := range diag.Run(ctx, diagConfig(env, settings.Load(env.Root)), nil) {
			mark := stepOK
			switch {
			case r.Skipped:
				mark = stepSkipped
			case !r.OK:
				mark = stepFailed
			}
			fmt.Fprintf(&b, "%s %s\n", mark.mark(), r.Message)
		}
		return []byte(b.String()), nil
	}
	opt.ReadFile = func(path string) ([]byte, error) {
		step(strings.TrimPrefix(path, strings.TrimSuffix(env.Root, "/")))
		return os.ReadFile(path)
	}
	opt.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
		step(name + " " + strings.Join(args, " "))
		switch name {
		case "dmsetup":
			// Root only; the helper reads the verity targets' status.
			return env.Privileged.VerityStatus(ctx)
		case "veritysetup":
			return nil, errors.New("needs root, which the console does not have; verity/dmsetup-status.txt has the verity status")
		case "ip":
			if out, ok, err := ipCommand(args); ok {
				return out, err
			}
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return env.Run.Output(ctx, name, args...)
	}
	return opt
}

func (v *supportView) draw(a *App) page {
	body := []screen.Line{bold("  Support bundle"), blank()}
	p := page{title: "Support bundle", help: "Esc back"}
	switch v.phase {
	case supportChecking:
		body = append(body, a.wrap(2, "Checking the connector and its tunnel...")...)
	case supportCollecting:
		body = append(body, a.wrap(2, "Collecting (secrets are redacted as each part is read):")...)
		body = append(body, text(fmt.Sprintf("  %d parts read; now %s", v.parts, clipText(v.what, a.width()-30))))
	case supportEncrypting:
		body = append(body, a.wrap(2, fmt.Sprintf("Collected %d parts. Encrypting to the vendor's key...", v.parts))...)
	case supportSending:
		body = append(body, a.wrap(2, fmt.Sprintf("Sending %s (encrypted) through the tunnel to the control plane...", byteSize(int64(v.size))))...)
	case supportSent:
		body = append(body, kv("Bundle ID", v.rec.ID), kv("Size", fmt.Sprintf("%s encrypted (%d bytes)", byteSize(v.rec.Size), v.rec.Size)),
			kv("Contents", fmt.Sprintf("%d parts, %d secrets redacted", v.nparts, v.redacted)), blank())
		body = append(body, a.wrap(2, "The bundle is with the control plane, readable only by VaultPAM support. Give them the bundle ID.")...)
		p.msg = "Support bundle sent."
	case supportTunnelDown:
		body = append(body, a.wrap(2, v.why)...)
		body = append(body, blank())
		body = append(body, a.wrap(2, "A support bundle goes to the control plane through the connector's tunnel, so it cannot be sent now. "+v.hint)...)
		p.msg = "The tunnel is down: the bundle was not sent."
		p.help = "D diagnostics  G try again  Esc back"
	case supportFailed:
		body = append(body, boldWrap(a, 2, v.why)...)
		if v.hint != "" {
			body = append(body, a.wrap(2, "hint: "+v.hint)...)
		}
		p.msg = "The support bundle was not sent."
		p.help = "G try again  Esc back"
	}
	if v.phase.running() {
		p.help = "Please wait"
	}
	p.body = body
	return p
}

func (v *supportView) key(a *App, k screen.Key) {
	if v.phase.running() {
		return
	}
	switch {
	case k.Kind == screen.KeyEsc:
		a.showHealth()
	case k.Kind == screen.KeyRune && (k.Rune == 'g' || k.Rune == 'G') && v.phase != supportSent:
		v.start(a)
	case k.Kind == screen.KeyRune && (k.Rune == 'd' || k.Rune == 'D') && v.phase == supportTunnelDown:
		a.show(newDiagView(a))
	}
}
