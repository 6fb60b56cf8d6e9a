package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/vaultpam/appliance/lab"
)

// cmdBundles lists the support bundles connectors uploaded, or decrypts
// one with the lab's key and unpacks it.
func cmdBundles(env Env, args []string) error {
	fs := newFlags(env, "bundles")
	dir := fs.String("state", "", "lab state directory")
	asJSON := fs.Bool("json", false, "print JSON")
	decrypt := fs.String("decrypt", "", "ID of the bundle to decrypt and unpack")
	out := fs.String("out", "", "directory to unpack into (with --decrypt; created, must not hold the bundle's files)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *dir == "" {
		return usageError{"--state DIR is required"}
	}
	if *decrypt != "" {
		if *out == "" {
			return usageError{"--decrypt ID needs --out DIR"}
		}
		b, err := lab.OpenBundle(*dir, *decrypt)
		if err != nil {
			return hinted{err, "list the bundles with `vaultpam-lab bundles --state " + *dir + "`"}
		}
		if err := b.Unpack(*out); err != nil {
			return hinted{err, "choose an empty or new --out directory"}
		}
		m := b.Manifest
		fmt.Fprintf(env.Stdout, "unpacked %s from %s (%s, version %s, made %s) into %s: %d parts\n",
			*decrypt, m.ConnectorID, m.ConnectorName, m.Version, m.CreatedAt.Format(time.RFC3339), *out, len(b.Parts))
		for _, p := range m.Parts {
			note := ""
			if p.Redactions > 0 {
				note = fmt.Sprintf(" (%d redacted)", p.Redactions)
			}
			if p.Error != "" {
				note += " — " + p.Error
			}
			fmt.Fprintf(env.Stdout, "  %-40s %8d%s\n", p.Name, p.Size, note)
		}
		return nil
	}
	bs, err := lab.ListBundles(*dir)
	if err != nil {
		return err
	}
	if *asJSON {
		if bs == nil {
			bs = []lab.BundleInfo{}
		}
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(bs)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCONNECTOR\tNAME\tSIZE\tRECEIVED")
	for _, b := range bs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", b.ID, b.ConnectorID, b.ConnectorName, b.Size, b.ReceivedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}
