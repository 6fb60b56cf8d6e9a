package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vaultpam/appliance/connector/atomicfile"
	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/diagnose"
	"github.com/vaultpam/appliance/connector/localapi"
	"github.com/vaultpam/appliance/connector/support"
)

// exitNotSent: the bundle was made (and written with --out) but could not
// be sent, because the tunnel or the connector is down.
const exitNotSent = 4

// supportResult is what `support-bundle --json` prints.
type supportResult struct {
	Sent     bool   `json:"sent"`
	ID       string `json:"id,omitempty"`   // the control plane's ID, when sent
	Out      string `json:"out,omitempty"`  // the encrypted file, with --out
	Size     int    `json:"size"`           // encrypted bytes
	Parts    int    `json:"parts"`          // files in the bundle
	Redacted int    `json:"redacted"`       // secrets replaced
	TookMS   int64  `json:"took_ms"`        // collecting and encrypting
	Code     string `json:"code,omitempty"` // why not sent: tunnel_down, connector_down, …
	Error    string `json:"error,omitempty"`
	Hint     string `json:"hint,omitempty"`
}

// cmdSupportBundle collects a support bundle, encrypts it to the vendor's
// key and asks the running connector to upload it through the tunnel.
func cmdSupportBundle(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("support-bundle", flag.ContinueOnError)
	out := fs.String("out", "", "also write the encrypted bundle to this file (0600), e.g. to hand it over when the tunnel is down")
	asJSON := fs.Bool("json", false, "print the result as JSON (for the console)")
	socket := fs.String("socket", envOr(env, config.EnvSocket, localapi.DefaultSocket), "local API socket (PAM_AGENT_SOCKET)")
	cfgPath := fs.String("config", envOr(env, config.EnvConfig, defaultConfigPath), "config file (PAM_AGENT_CONFIG)")
	recipient := fs.String("recipient", "", "age public key to encrypt to (default: the one the control plane announced)")
	if err := parseFlags(fs, args, env.Stderr); err != nil {
		return exitUsage
	}
	var res supportResult
	report := func(code int) int {
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			enc.Encode(res)
			return code
		}
		if res.Error != "" {
			fail(env.Stderr, errors.New(res.Error), res.Hint)
		}
		return code
	}

	client := localapi.NewClient(*socket)
	st, stErr := client.Status(ctx)
	dataDir := envOr(env, config.EnvDataDir, defaultDataDir)
	opt := support.DefaultOptions()
	opt.ConfigFile = *cfgPath
	opt.Forbidden = []string{dataDir}
	opt.Version, opt.ConnectorID, opt.ConnectorName = version, st.ConnectorID, st.ConnectorName
	opt.Hostname, _ = os.Hostname()
	opt.Status = func(context.Context) ([]byte, error) {
		if stErr != nil {
			return nil, stErr
		}
		return json.MarshalIndent(st, "", "  ")
	}
	opt.Image = func(ctx context.Context) ([]byte, error) {
		img, err := localapi.NewUpdaterClient(envOr(env, envUpdaterSocket, localapi.UpdaterSocket)).Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("the image updater does not answer (not on the appliance?): %w", err)
		}
		return json.MarshalIndent(img, "", "  ")
	}
	opt.Diagnostics = func(ctx context.Context) ([]byte, error) {
		o, err := diagnoseOptions(env, *cfgPath)
		if err != nil {
			return nil, fmt.Errorf("the configuration does not load: %w", err)
		}
		var b strings.Builder
		diagnose.Write(&b, diagnose.Run(ctx, o))
		return []byte(b.String()), nil
	}
	if env.Support != nil {
		env.Support(&opt)
	}

	start := time.Now()
	b, err := support.Collect(ctx, opt)
	if err != nil {
		res.Error = "collecting the support bundle: " + err.Error()
		return report(exitError)
	}
	for _, p := range b.Manifest.Parts {
		res.Redacted += p.Redactions
	}
	res.Parts = len(b.Parts)
	to := *recipient
	if to == "" {
		to = st.SupportRecipient
	}
	if to == "" {
		res.Code = "no_recipient"
		res.Error = "no support-bundle key is known: the control plane announces it when the tunnel first comes up"
		res.Hint = "bring the connector online once (run the diagnostics: vaultpam-connector diagnose), or pass --recipient age1… from your vendor"
		if stErr != nil {
			res.Error += " (and the connector does not answer: " + stErr.Error() + ")"
		}
		return report(exitError)
	}
	ct, err := b.Encrypt(to)
	if err != nil {
		res.Error = err.Error()
		return report(exitError)
	}
	res.Size, res.TookMS = len(ct), time.Since(start).Milliseconds()
	if *out != "" {
		if err := atomicfile.WriteFile(*out, ct, 0o600); err != nil {
			res.Error = "writing " + *out + ": " + err.Error()
			return report(exitError)
		}
		res.Out = *out
	}
	name := "support-" + fileNamePart(st.ConnectorName) + "-" + b.Manifest.CreatedAt.Format("20060102T150405Z") + ".tar.gz.age"
	notSent := func(code, msg, hint string) int {
		res.Code, res.Error, res.Hint = code, msg, hint
		if res.Out != "" {
			res.Hint += "; the encrypted bundle is in " + res.Out
		} else {
			res.Hint += "; --out FILE keeps the encrypted bundle to hand over another way"
		}
		return report(exitNotSent)
	}
	if stErr != nil {
		return notSent("connector_down", "the connector does not answer, so the bundle cannot be sent: "+stErr.Error(),
			"check the connector (systemctl status vaultpam-connector) and run the diagnostics: vaultpam-connector diagnose")
	}
	rec, err := client.UploadSupportBundle(ctx, name, ct)
	if err != nil {
		var le *localapi.Error
		if errors.As(err, &le) {
			return notSent(le.Code, le.Message, le.Hint)
		}
		return notSent("upload_failed", err.Error(), "run the diagnostics: vaultpam-connector diagnose")
	}
	res.Sent, res.ID = true, rec.ID
	if !*asJSON {
		fmt.Fprintf(env.Stdout, "support bundle %s sent to the control plane: %d bytes encrypted, %d parts, %d secrets redacted (made in %d ms)\n",
			res.ID, res.Size, res.Parts, res.Redacted, res.TookMS)
		if res.Out != "" {
			fmt.Fprintf(env.Stdout, "a copy is in %s\n", res.Out)
		}
	}
	return report(exitOK)
}

func fileNamePart(n string) string {
	if n == "" {
		return "connector"
	}
	return n
}
