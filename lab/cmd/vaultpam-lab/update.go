package main

import (
	"encoding/json"
	"path/filepath"
)

// cmdUpdateOffer offers an update bundle to one connector.
func cmdUpdateOffer(env Env, args []string) error {
	fs := newFlags(env, "update offer")
	dir := fs.String("state", "", "lab state directory")
	conn := fs.String("connector", "", "ID of the connector to update")
	file := fs.String("file", "", "the update bundle (dist/vaultpam-connector-VERSION.update)")
	repo := fs.String("repo", "", "the signed update repository that lists it (default: update-repo next to the file)")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if *conn == "" || *file == "" {
		return usageError{"update offer needs --connector ID and --file PATH"}
	}
	// The running server resolves paths in its own directory: send absolute ones.
	abs, err := filepath.Abs(*file)
	if err != nil {
		return err
	}
	if *repo != "" {
		if *repo, err = filepath.Abs(*repo); err != nil {
			return err
		}
	}
	a, done, err := admin(*dir)
	if err != nil {
		return err
	}
	defer done()
	o, err := a.OfferUpdate(*conn, abs, *repo)
	if err != nil {
		return hinted{err, "check the connector ID (vaultpam-lab connectors) and that the file is a bundle listed in the repository"}
	}
	enc := json.NewEncoder(env.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(o)
}
