package image

import (
	"encoding/binary"
	"fmt"
	"os"
)

// stampPE sets the COFF TimeDateStamp of the PE file at path to epoch and
// recomputes its CheckSum. objcopy writes the current time there, which
// would make every UKI (and so the ESP and the disk) differ between builds.
func stampPE(path string, epoch int64) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(data) < 0x40 || string(data[:2]) != "MZ" {
		return fmt.Errorf("%s is not a PE file", path)
	}
	le := binary.LittleEndian
	pe := int(le.Uint32(data[0x3c:]))
	if pe+24+68 > len(data) || string(data[pe:pe+4]) != "PE\x00\x00" {
		return fmt.Errorf("%s has no PE header", path)
	}
	le.PutUint32(data[pe+8:], uint32(epoch))
	sumOff := pe + 24 + 64 // optional header: CheckSum
	le.PutUint32(data[sumOff:], peChecksum(data, sumOff))
	return os.WriteFile(path, data, 0o644)
}

// peChecksum is the PE image checksum: the 16-bit one's-complement-style
// sum of the file (its CheckSum field left out) plus the file length.
func peChecksum(data []byte, sumOff int) uint32 {
	var sum uint64
	for i := 0; i < len(data); i += 2 {
		if i == sumOff || i == sumOff+2 {
			continue
		}
		w := uint64(data[i])
		if i+1 < len(data) {
			w |= uint64(data[i+1]) << 8
		}
		sum += w
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(data))
}
