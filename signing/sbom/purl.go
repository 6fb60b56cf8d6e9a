package sbom

import (
	"fmt"
	"strings"
)

// DebPURL returns the package URL of a Debian binary package:
// pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=DISTRO. The version is
// percent-encoded as packageurl-go (syft, trivy) does it: ':' of an epoch
// and '+' stay as they are;
// distro is left out when empty.
func DebPURL(p Package, distro string) string {
	s := "pkg:deb/debian/" + purlEscape(p.Name) + "@" + purlEscape(p.Version) + "?arch=" + purlEscape(p.Architecture)
	if distro != "" {
		s += "&distro=" + purlEscape(distro)
	}
	if p.Source != "" && p.Source != p.Name {
		s += "&upstream=" + purlEscape(p.Source)
	}
	return s
}

// purlEscape percent-encodes everything but unreserved characters, ':'
// and '+'.
func purlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~:+", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
