// Package protocol holds what the connector and the control plane must agree
// on byte for byte: the enrolment token format here, and the wire messages
// of enrolment and of the tunnel in the other files of this package.
package protocol
