package state

import "testing"

func TestNamesAndLabels(t *testing.T) {
	for s := AwaitingToken; s <= Stopped; s++ {
		got, ok := Parse(s.String())
		if !ok || got != s {
			t.Errorf("Parse(%q) = %v, %v; want %v", s.String(), got, ok, s)
		}
		if s.Label() == "" || LabelOf(s.String()) != s.Label() {
			t.Errorf("%v: label %q, LabelOf %q", s, s.Label(), LabelOf(s.String()))
		}
	}
	if NeedsRecovery.String() != "needs_recovery" || NeedsRecovery.Label() != "Needs recovery" || Reconnecting.Label() != "Offline (reconnecting)" {
		t.Errorf("NeedsRecovery = %q / %q, Reconnecting label %q", NeedsRecovery, NeedsRecovery.Label(), Reconnecting.Label())
	}
	if LabelOf("something_new") != "something_new" {
		t.Errorf("LabelOf of an unknown name = %q, want the name", LabelOf("something_new"))
	}
}
