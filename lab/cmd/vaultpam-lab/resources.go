package main

import "github.com/vaultpam/appliance/lab"

func cmdResourcesAdd(env Env, args []string) error {
	fs := newFlags(env, "resources add")
	dir := fs.String("state", "", "lab state directory")
	name := fs.String("name", "", "resource name")
	addr := fs.String("address", "", "target HOST:PORT as the connector dials it")
	conn := fs.String("connector", "", "ID of the connector that reaches it")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	a, done, err := admin(*dir)
	if err != nil {
		return err
	}
	defer done()
	return a.AddResource(lab.Resource{Name: *name, Address: *addr, Connector: *conn})
}
