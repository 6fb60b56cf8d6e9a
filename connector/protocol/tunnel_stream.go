package protocol

// Typed connector streams. Besides the control stream, the connector may
// open a stream to hand the control plane something bigger than a control
// message. The exchange, on a fresh yamux stream:
//
//	connector → StreamHeader frame {type, name, size}
//	control plane → StreamReply frame: OK (go on) or a typed refusal (then it closes)
//	connector → exactly size raw bytes, then half-close (yamux FIN)
//	control plane → StreamReply frame: OK with the ID it stored them under, or a typed error
//
// The first answer comes before any payload, so a refused upload costs
// nothing. The control plane accepts only the types it knows, at most
// MaxSupportBundle bytes for a support bundle, and one upload of a type at
// a time per connector (StreamBusy otherwise).

// Stream types (StreamHeader.Type).
const (
	// StreamSupportBundle carries a support bundle: an age-encrypted
	// tar.gz (connector/support), encrypted to the recipient the control
	// plane announced in its hello_ack.
	StreamSupportBundle = "support_bundle"
)

// MaxSupportBundle bounds a support bundle's size on the wire. A bundle
// holds text (journal excerpts, status, configuration): a few MiB.
const MaxSupportBundle = 32 << 20

// StreamHeader opens a typed connector stream.
type StreamHeader struct {
	Type string `json:"type"`
	Name string `json:"name"` // a file name for people, e.g. "support-dc1-20261128T140508Z.tar.gz.age"
	Size int64  `json:"size"` // exact payload size in bytes
}

// StreamReply answers a StreamHeader (before the payload) and the payload
// (after it). ID is set in the final answer: where the control plane keeps
// what it received.
type StreamReply struct {
	OK    bool         `json:"ok"`
	ID    string       `json:"id,omitempty"`
	Error *StreamError `json:"error,omitempty"`
}

// StreamError is a typed refusal of a connector stream.
type StreamError struct {
	Code    string `json:"code"` // Stream*
	Message string `json:"message"`
}

func (e *StreamError) Error() string { return e.Code + ": " + e.Message }

// Codes of StreamError.
const (
	StreamUnknownType = "unknown_stream_type" // the control plane does not take this type
	StreamTooLarge    = "too_large"           // Size above the limit
	StreamBusy        = "busy"                // an upload of this type from this connector is under way
	StreamBadHeader   = "bad_header"          // malformed header (no name, negative size, …)
	StreamIncomplete  = "incomplete"          // fewer bytes than Size arrived
	StreamNotTaken    = "not_taken"           // the control plane could not keep it (storage); try again later
)
