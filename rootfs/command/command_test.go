package command

import (
	"slices"
	"testing"
)

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"A=1", "SOURCE_DATE_EPOCH=5", "B=2"}, []string{"SOURCE_DATE_EPOCH", "B=3", "C=4"})
	want := []string{"A=1", "B=3", "C=4"}
	if !slices.Equal(got, want) {
		t.Fatalf("MergeEnv = %q, want %q", got, want)
	}
}
