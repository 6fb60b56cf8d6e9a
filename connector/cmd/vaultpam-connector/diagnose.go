package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"

	"github.com/vaultpam/appliance/connector/config"
	"github.com/vaultpam/appliance/connector/diagnose"
)

// cmdDiagnose checks DNS, TCP and TLS to the control plane with the
// connector's configuration (package diagnose).
func cmdDiagnose(ctx context.Context, env Env, args []string) int {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	cfgPath := fs.String("config", envOr(env, config.EnvConfig, defaultConfigPath), "config file (PAM_AGENT_CONFIG); \"\" for environment only")
	asJSON := fs.Bool("json", false, "print the checks as JSON")
	if err := parseFlags(fs, args, env.Stderr); err != nil {
		return exitUsage
	}
	opt, err := diagnoseOptions(env, *cfgPath)
	if err != nil {
		failIn(env.Stderr, "configuration "+*cfgPath, err, "fix the configuration first (see connector/README.md, \"Configuration\")")
		return exitConfig
	}
	checks := diagnose.Run(ctx, opt)
	if *asJSON {
		env.Stdout.Write(diagnose.JSON(checks))
	} else {
		diagnose.Write(env.Stdout, checks)
	}
	if !diagnose.OK(checks) {
		return exitError
	}
	return exitOK
}

// diagnoseOptions reads what the checks need from the configuration.
func diagnoseOptions(env Env, path string) (diagnose.Options, error) {
	cfg, err := config.Load(path, env.Getenv)
	if err != nil {
		return diagnose.Options{}, err
	}
	roots, err := loadRoots(cfg.ControlPlaneCAFile)
	if err != nil {
		return diagnose.Options{}, err
	}
	o := diagnose.Options{URL: cfg.ControlPlaneURL, RootCAs: roots}
	if cfg.ProxyURL != "" {
		if o.Proxy, err = url.Parse(cfg.ProxyURL); err != nil {
			return o, fmt.Errorf("proxy_url: %w", err)
		}
	}
	return o, nil
}
