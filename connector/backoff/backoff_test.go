package backoff

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBackoffDeterministic(t *testing.T) {
	b := Default()
	seq := func() []time.Duration {
		r := rand.NewChaCha8([32]byte{7})
		var out []time.Duration
		for i := range 10 {
			out = append(out, b.Delay(i, r).Round(time.Millisecond))
		}
		return out
	}
	a, c := seq(), seq()
	if diff := cmp.Diff(a, c); diff != "" {
		t.Fatalf("same seed gave different sequences (-first +second):\n%s", diff)
	}
	t.Logf("delays: %v", a)
	for i, d := range a {
		ceil := min(time.Second<<i, 30*time.Second)
		if d < ceil/2 || d > ceil {
			t.Errorf("Delay(%d) = %v, want within [%v, %v]", i, d, ceil/2, ceil)
		}
	}
	if a[0] > time.Second {
		t.Errorf("first retry after %v, want within 1s", a[0])
	}
}

// zeroReader and maxReader pin the jitter to its bounds.
type fill byte

func (f fill) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f)
	}
	return len(p), nil
}

func TestBackoffBounds(t *testing.T) {
	b := Default()
	for _, tc := range []struct {
		attempt int
		r       fill
		want    time.Duration
	}{
		{0, 0, 500 * time.Millisecond},
		{1, 0, time.Second},
		{4, 0, 8 * time.Second},
		{5, 0, 15 * time.Second},
		{50, 0, 15 * time.Second},
		{50, 0xff, 30 * time.Second},
	} {
		got := b.Delay(tc.attempt, tc.r).Round(time.Millisecond)
		if got != tc.want {
			t.Errorf("Delay(%d, fill %#x) = %v, want %v", tc.attempt, byte(tc.r), got, tc.want)
		}
	}
}

func TestBackoffValidate(t *testing.T) {
	if err := (Backoff{Initial: 0, Max: -1, Factor: 0.5}).Validate(); err == nil {
		t.Fatal("Validate of a broken backoff = nil, want errors")
	} else if got := len(strings.Split(strings.TrimSpace(err.Error()), "\n")); got != 3 {
		t.Errorf("Validate reported %d problems, want 3: %v", got, err)
	}
}
