package config

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// fields are the configuration's fields in their YAML spelling, in the
// order people read them.
var fields = []string{"control_plane_url", "control_plane_ca_file", "connector_name", "allowed_targets", "proxy_url", "drain_timeout", "update_window", "metrics_listen"}

// Parse decodes YAML b into c. Unknown fields, values of the wrong shape
// and secrets are errors, each naming its field and line. No message
// repeats a value from b: whatever is in the file (a token or a password
// pasted by mistake) stays out of logs and screens.
func Parse(b []byte, c *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return fmt.Errorf("config is not valid YAML: %s", yamlMessage(err))
	}
	if len(root.Content) == 0 {
		return nil // empty file: everything from the environment
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("config must be a mapping of field: value (line %d)", doc.Line)
	}
	if errs := secretsInNode("", doc); len(errs) > 0 {
		return &SecretError{errs} // do not go further with a secret in hand
	}
	var errs []error
	seen := map[string]int{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], deref(doc.Content[i+1])
		name := k.Value
		if first, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("%s (line %d): set twice (first on line %d)", safeKey(name), k.Line, first))
			continue
		}
		seen[name] = k.Line
		field := fmt.Sprintf("%s (line %d)", name, k.Line)
		switch name {
		case "control_plane_url":
			errs = append(errs, scalar(field, v, &c.ControlPlaneURL))
		case "control_plane_ca_file":
			errs = append(errs, scalar(field, v, &c.ControlPlaneCAFile))
		case "connector_name":
			errs = append(errs, scalar(field, v, &c.ConnectorName))
		case "proxy_url":
			errs = append(errs, scalar(field, v, &c.ProxyURL))
		case "allowed_targets":
			errs = append(errs, list(field, v, &c.AllowedTargets))
		case "drain_timeout":
			var s string
			if err := scalar(field, v, &s); err != nil {
				errs = append(errs, err)
				break
			}
			d, err := time.ParseDuration(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: not a duration like 30s or 2m", field))
				break
			}
			c.DrainTimeout = Duration(d)
		case "update_window":
			var s string
			if err := scalar(field, v, &s); err != nil {
				errs = append(errs, err)
				break
			}
			w, err := ParseWindow(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: not a window like \"02:00-04:00\" or \"Sat,Sun 02:00-04:00\" (UTC)", field))
				break
			}
			c.UpdateWindow = w
		case "metrics_listen":
			errs = append(errs, scalar(field, v, &c.MetricsListen))
		default:
			errs = append(errs, fmt.Errorf("%s (line %d): unknown field (known fields: %s)", safeKey(name), k.Line, strings.Join(fields, ", ")))
		}
	}
	return errors.Join(errs...)
}

// deref follows YAML aliases (*anchor) to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func scalar(field string, n *yaml.Node, dst *string) error {
	switch {
	case n.Kind != yaml.ScalarNode:
		return fmt.Errorf("%s: want a single value, not a %s", field, kind(n))
	case n.Tag == "!!null":
		*dst = ""
	default:
		*dst = n.Value
	}
	return nil
}

func list(field string, n *yaml.Node, dst *[]string) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		*dst = nil
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s: want a list like [\"10.20.0.0/16\", \"db.internal:5432\"], not a %s", field, kind(n))
	}
	var out []string
	for i, e := range n.Content {
		if e = deref(e); e.Kind != yaml.ScalarNode {
			return fmt.Errorf("%s: entry %d: want a single value, not a %s", field, i, kind(e))
		}
		out = append(out, e.Value)
	}
	*dst = out
	return nil
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	}
	return "value"
}

// safeKey returns a field name for a message: as written when it looks
// like a field name (letters, digits, underscores), else a placeholder,
// since a key could be anything pasted by mistake.
func safeKey(k string) string {
	if keyRE.MatchString(k) && !looksLikeToken(k) {
		return k
	}
	return "a field (name not shown)"
}

var keyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,40}$`)

// yamlMessage is a YAML parser error without anything it quotes from the
// input (anchors, tags: the parser quotes up to a few characters of
// them); the line number stays.
func yamlMessage(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	return quotedRE.ReplaceAllStringFunc(s, func(q string) string {
		if len(q) <= 3 { // a quoted punctuation mark: ',' or ']'
			return q
		}
		return "(text not shown)"
	})
}

var quotedRE = regexp.MustCompile("'[^']*'|`[^`]*`|\"[^\"]*\"")
