package console

import (
	"strings"
	"testing"
)

func titles(steps []step) string {
	var out []string
	for _, s := range steps {
		out = append(out, s.title)
	}
	return strings.Join(out, " | ")
}

// The two pipelines are lists of named steps: setup runs the network part,
// then the connector, the token and the enrolment; "edit network" never
// reaches the connector or a token.
func TestPipelines(t *testing.T) {
	const network = "Write settings to /config | Apply network settings | Wait for an address on eth0 | DNS | TCP | TLS | Clock"
	if got := titles(networkSteps("eth0")); got != network {
		t.Errorf("networkSteps = %s\nwant %s", got, network)
	}
	setup := setupSteps("eth0")
	if got, want := titles(setup), network+" | Start the connector | Hand over the token | Enrolment"; got != want {
		t.Errorf("setupSteps = %s\nwant %s", got, want)
	}
	if i := stepIndex(setup, stepToken); i < 0 || setup[i].title != "Hand over the token" {
		t.Errorf("stepIndex(setup, token) = %d, want the token step", i)
	}
	if i := stepIndex(networkSteps("eth0"), stepToken); i != -1 {
		t.Errorf("the network pipeline has a token step at %d", i)
	}
	if i := afterChecks(setup); setup[i].title != "Start the connector" {
		t.Errorf("continue anyway resumes at %q, want the first step after the checks", setup[i].title)
	}
	if i, n := afterChecks(networkSteps("eth0")), len(networkSteps("eth0")); i != n {
		t.Errorf("continue anyway in the network pipeline resumes at %d, want the end (%d)", i, n)
	}
}
