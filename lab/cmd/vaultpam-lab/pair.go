package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vaultpam/appliance/lab"
)

// cmdPair is `vaultpam-lab pair approve|deny|list`: the approval page's
// decisions from a shell (tests, people without a browser).
func cmdPair(env Env, sub string, args []string) error {
	fs := newFlags(env, "pair "+sub)
	dir := fs.String("state", "", "lab state directory")
	code := fs.String("code", "", "the user code the connector shows (XXXX-XXXX)")
	name := fs.String("name", "", "pair approve: name of the new connector (default: the name it asked with)")
	recover := fs.String("recover", "", "pair approve: approve as a recovery of this connector ID")
	asJSON := fs.Bool("json", false, "pair list: print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if sub != "list" && *code == "" {
		return usageError{"pair " + sub + " needs --code XXXX-XXXX (the code on the connector's console)"}
	}
	a, done, err := admin(*dir)
	if err != nil {
		return err
	}
	defer done()
	switch sub {
	case "list":
		ps, err := a.ListPairings()
		if err != nil {
			return err
		}
		return printPairings(env, ps, *asJSON)
	case "deny":
		p, err := a.DenyPairing(*code)
		if err != nil {
			return pairHint(err)
		}
		fmt.Fprintf(env.Stdout, "denied %s (%s, %s)\n", p.UserCode, p.Name, orDash(p.Hostname))
		return nil
	}
	p, err := a.ApprovePairing(*code, *name, *recover)
	if err != nil {
		return pairHint(err)
	}
	if p.Recover != "" {
		fmt.Fprintf(env.Stdout, "approved %s as the recovery of %s (%s); the connector enrols with that ID\n", p.UserCode, p.Recover, p.Name)
	} else {
		fmt.Fprintf(env.Stdout, "approved %s as %s (%s); the connector enrols on its next poll\n", p.UserCode, p.Name, orDash(p.Hostname))
	}
	return nil
}

// pairHint adds what to do next to a refused decision. The admin socket
// carries the message only, so the kind is found in its words.
func pairHint(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, lab.ErrPairCodeTypo) || strings.Contains(msg, lab.ErrPairCodeTypo.Error()):
		return hinted{err, "compare the code with the connector's console character by character"}
	case errors.Is(err, lab.ErrPairCodeExpired) || strings.Contains(msg, lab.ErrPairCodeExpired.Error()):
		return hinted{err, "the console shows a new code by itself; approve that one"}
	case errors.Is(err, lab.ErrPairCodeUnknown) || strings.Contains(msg, lab.ErrPairCodeUnknown.Error()):
		return hinted{err, "`vaultpam-lab pair list --state DIR` lists the pairings waiting"}
	}
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printPairings(env Env, ps []lab.Pairing, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if ps == nil {
			ps = []lab.Pairing{}
		}
		return enc.Encode(ps)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tSTATUS\tNAME\tHOSTNAME\tADDRESSES\tIMAGE\tEXPIRES\tCONNECTOR")
	for _, p := range ps {
		conn := p.Enrolled
		if conn == "" {
			conn = p.Recover
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.UserCode, p.Status, p.Name, orDash(p.Hostname),
			orDash(strings.Join(p.Addresses, ",")), orDash(p.ImageVersion), p.ExpiresAt.Format(time.RFC3339), orDash(conn))
	}
	return tw.Flush()
}

// cmdAdminPassword prints the approval page's administrator password.
func cmdAdminPassword(env Env, args []string) error {
	fs := newFlags(env, "admin-password")
	dir := fs.String("state", "", "lab state directory")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *dir == "" {
		return usageError{"admin-password needs --state DIR"}
	}
	pw, err := lab.ReadAdminPassword(*dir)
	if err != nil {
		return hinted{err, "`vaultpam-lab serve --state DIR` makes it when it first starts"}
	}
	fmt.Fprintln(env.Stdout, pw)
	return nil
}
