// Package protocol holds what the connector and the control plane must agree
// on byte for byte: the enrolment token format here, the pairing user code
// (usercode.go), and the wire messages of enrolment, pairing and the tunnel
// in the other files of this package.
package protocol
