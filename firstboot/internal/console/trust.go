package console

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/vaultpam/appliance/firstboot/internal/diag"
	"github.com/vaultpam/appliance/firstboot/internal/screen"
	"github.com/vaultpam/appliance/firstboot/internal/settings"
)

// caTruster is the part of the helper that adds a CA to /config/ca.pem
// (*privileged.Client has it).
type caTruster interface {
	TrustCA(ctx context.Context, pemCerts []byte) error
}

// chainLines shows the chain a control plane (or a TLS-inspecting proxy
// in between) presented: each certificate's subject, issuer and validity,
// then the SHA-256 fingerprint of its root, split in two lines of 16
// bytes so it can be compared group by group.
func chainLines(a *App, r diag.Result) []screen.Line {
	w := a.width() - 4
	out := []screen.Line{text("  Presented chain (leaf first):")}
	for i, c := range r.Chain {
		out = append(out,
			text(clipText(fmt.Sprintf("  %d %s", i+1, c.Subject), w)),
			text(clipText(fmt.Sprintf("    issued by %s, valid %s to %s", c.Issuer, c.NotBefore.UTC().Format("2006-01-02"), c.NotAfter.UTC().Format("2006-01-02")), w)))
	}
	fp := settings.Fingerprint(r.Root())
	out = append(out, bold("  Root SHA-256 "+fp[:47]), bold("              "+fp[48:]))
	return out
}

// trustView asks the operator to compare the root's fingerprint before
// the appliance trusts it for the control plane.
type trustView struct {
	root *x509.Certificate
	back view         // Esc
	done func(a *App) // after trusting: show and run the checks again
	busy bool
	err  string
}

func (v *trustView) draw(a *App) page {
	fp := settings.Fingerprint(v.root)
	body := []screen.Line{
		text(clipText("  Subject   "+v.root.Subject.String(), a.width()-2)),
		text(clipText("  Issuer    "+v.root.Issuer.String(), a.width()-2)),
		text(fmt.Sprintf("  Valid     %s to %s", v.root.NotBefore.UTC().Format("2006-01-02 15:04"), v.root.NotAfter.UTC().Format("2006-01-02 15:04 MST"))),
		blank(),
		bold("  SHA-256   " + fp[:47]),
		bold("            " + fp[48:]),
		blank(),
	}
	body = append(body, a.wrap(2, "Compare this fingerprint with the one your control plane's or your TLS-inspecting proxy's administrator gives you, through another channel. Only trust it if every group matches: whoever holds this CA's key can then impersonate the control plane to this appliance.")...)
	body = append(body, blank())
	body = append(body, a.wrap(2, "It is added to /config/ca.pem (the certificate only, public material); the connector restarts to use it.")...)
	p := page{title: "Trust a certificate authority", body: body, msg: "Does the fingerprint match?", help: "Y trust it  Esc back"}
	switch {
	case v.busy:
		p.msg, p.help = "Trusting...", "Please wait"
	case v.err != "":
		p.msg = v.err
	}
	return p
}

func (v *trustView) key(a *App, k screen.Key) {
	if v.busy {
		return
	}
	switch {
	case k.Kind == screen.KeyEsc || k.Kind == screen.KeyRune && (k.Rune == 'n' || k.Rune == 'N'):
		a.show(v.back)
	case k.Kind == screen.KeyRune && (k.Rune == 'y' || k.Rune == 'Y'):
		t, ok := a.env.Privileged.(caTruster)
		if !ok {
			v.err = "error: this console helper cannot add a CA; hint: put the CA into /config/ca.pem with the OVF property vaultpam.ca_cert"
			return
		}
		v.busy = true
		body := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: v.root.Raw})
		goDo(a, func(ctx context.Context) error {
			if err := t.TrustCA(ctx, body); err != nil {
				return err
			}
			return a.env.Privileged.RestartConnector(ctx)
		}, func(err error) {
			v.busy = false
			if err != nil {
				msg, hint := privilegedError(err)
				v.err = "error: " + msg
				if hint != "" {
					v.err += " (hint: " + hint + ")"
				}
				return
			}
			v.done(a)
		})
	}
}
