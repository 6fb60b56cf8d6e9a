package updates

import (
	"bytes"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultpam/appliance/connector/protocol"
)

// FuzzUpdateOffer reads fuzzed control-stream frames as the tunnel does
// and checks the update offers among them as the Manager does. An offer
// it takes downloads only into a directory of its own right under the
// download directory, each file right inside that (so a failed download's
// RemoveAll and the clean-up of other offers stay there), and only from
// the control plane it is connected to.
func FuzzUpdateOffer(f *testing.F) {
	const base = "/data/update/incoming"
	const cp = "https://cp.example.com:8443"
	f.Fuzz(func(t *testing.T, frame []byte) {
		var m protocol.TunnelMessage
		if err := protocol.ReadTunnelFrame(bytes.NewReader(frame), &m); err != nil || m.Type != protocol.MsgUpdateOffer || m.Offer == nil {
			return
		}
		o := *m.Offer
		if checkOffer(o) != nil {
			return
		}
		dir := filepath.Join(base, o.ID) // as run does
		if filepath.Dir(dir) != base || filepath.Base(dir) != o.ID {
			t.Fatalf("offer ID %q downloads into %s, not a directory of its own under %s", o.ID, dir, base)
		}
		for _, file := range append([]protocol.UpdateFile{o.Bundle}, o.Metadata...) {
			for _, p := range []string{filepath.Join(dir, file.Name), filepath.Join(dir, file.Name) + ".part"} {
				if filepath.Dir(p) != dir {
					t.Fatalf("file %q of offer %q is written to %s, outside %s", file.Name, o.ID, p, dir)
				}
			}
			u, err := url.Parse(strings.TrimRight(cp, "/") + file.Path) // as fetch does
			if err != nil {
				continue // the request is never made
			}
			if u.Scheme != "https" || u.Host != "cp.example.com:8443" || u.User != nil {
				t.Fatalf("file %q of offer %q is fetched from %s, not from the control plane", file.Name, o.ID, u)
			}
		}
	})
}
