package daemon

import (
	"errors"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/vaultpam/appliance/connector/config"
)

// readWindow reads update_window from the connector's configuration file
// with the connector's own parser (config.Window). Only that field is
// read; the connector validates the rest. A missing file or field is "at
// any time".
func readWindow(path string) (config.Window, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return config.Window{}, nil
	}
	if err != nil {
		return config.Window{}, fmt.Errorf("reading the maintenance window: %w", err)
	}
	var c struct {
		UpdateWindow config.Window `yaml:"update_window"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return config.Window{}, fmt.Errorf("update_window in %s: %w (hint: write it like \"02:00-04:00\" or \"Sat,Sun 02:00-04:00\", UTC)", path, err)
	}
	return c.UpdateWindow, nil
}
