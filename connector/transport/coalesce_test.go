package transport

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// writeLog records each Write as the underlying connection sees it.
type writeLog struct {
	writes       [][]byte
	bytes.Buffer // Read, to be an io.ReadWriteCloser
}

func (w *writeLog) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}
func (w *writeLog) Close() error { return nil }

func muxHeader(typ byte, length uint32) []byte {
	h := make([]byte, muxHeaderSize)
	h[1] = typ
	binary.BigEndian.PutUint32(h[4:8], 3)
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

func TestCoalescingConn(t *testing.T) {
	w := &writeLog{}
	c := CoalescingConn(w, nil)
	dataHdr, body := muxHeader(muxTypeData, 5), []byte("hello")
	windowUpdate := muxHeader(1, 1<<20)
	emptyData := muxHeader(muxTypeData, 0) // e.g. a SYN or FIN without payload

	for _, p := range [][]byte{dataHdr, body, windowUpdate, emptyData, dataHdr, body} {
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
	}
	want := [][]byte{
		append(append([]byte(nil), dataHdr...), body...),
		windowUpdate,
		emptyData,
		append(append([]byte(nil), dataHdr...), body...),
	}
	if diff := cmp.Diff(want, w.writes); diff != "" {
		t.Errorf("writes reaching the connection (-want +got):\n%s", diff)
	}
}
