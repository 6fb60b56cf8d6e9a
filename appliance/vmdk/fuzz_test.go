package vmdk

import (
	"testing"
)

// FuzzHeader feeds arbitrary sectors to the header decoder: it never
// panics, refuses what lacks a field this package depends on, and what it
// accepts encodes back to a sector that decodes to the same header.
func FuzzHeader(f *testing.F) {
	good, _ := Header{Capacity: 1 << 21, DescriptorOffset: 1, DescriptorSize: 20, GDOffset: gdAtEnd, OverHead: 128}.MarshalBinary()
	f.Add(good)
	footer, _ := Header{Capacity: 8, GDOffset: 300, OverHead: 128}.MarshalBinary()
	f.Add(footer)
	f.Add(good[:SectorSize-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		if err := h.UnmarshalBinary(b); err != nil {
			if err.Error() == "" {
				t.Fatal("refusal without a message")
			}
			return
		}
		enc, err := h.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary of an accepted header: %v", err)
		}
		var back Header
		if err := back.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoded header refused: %v", err)
		}
		if back != h {
			t.Fatalf("round trip changed the header: %+v → %+v", h, back)
		}
	})
}
