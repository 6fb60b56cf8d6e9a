package ovfenv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ReadISOFile returns the contents of the file called name in the root
// directory of the ISO 9660 filesystem on r, so the appliance reads the ISO
// transport's ovf-env.xml without mounting anything. Names compare without
// case, version suffix (";1") and with '_' equal to '-' (level-1 names
// cannot hold a hyphen). Files larger than max are refused.
func ReadISOFile(r io.ReaderAt, name string, max int64) ([]byte, error) {
	pvd := make([]byte, 2048)
	if _, err := r.ReadAt(pvd, 16*2048); err != nil {
		return nil, fmt.Errorf("reading ISO 9660 volume descriptor: %w", err)
	}
	if pvd[0] != 1 || string(pvd[1:6]) != "CD001" {
		return nil, errors.New("not an ISO 9660 filesystem")
	}
	bs := int64(binary.LittleEndian.Uint16(pvd[128:130]))
	if bs == 0 {
		bs = 2048
	}
	root := pvd[156 : 156+34]
	ext := int64(binary.LittleEndian.Uint32(root[2:6]))
	size := int64(binary.LittleEndian.Uint32(root[10:14]))
	if size > 1<<20 {
		return nil, errors.New("ISO 9660 root directory is implausibly large")
	}
	dir := make([]byte, size)
	if _, err := r.ReadAt(dir, ext*bs); err != nil {
		return nil, fmt.Errorf("reading ISO 9660 root directory: %w", err)
	}
	want := isoName(name)
	for off := int64(0); off < size; {
		n := int64(dir[off])
		if n == 0 { // records do not cross blocks: skip to the next one
			off = (off/bs + 1) * bs
			continue
		}
		if off+n > size || n < 34 {
			break
		}
		rec := dir[off : off+n]
		nl := int(rec[32])
		if 33+nl <= len(rec) && isoName(string(rec[33:33+nl])) == want && rec[25]&2 == 0 {
			fext := int64(binary.LittleEndian.Uint32(rec[2:6]))
			flen := int64(binary.LittleEndian.Uint32(rec[10:14]))
			if flen > max {
				return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", name, flen, max)
			}
			b := make([]byte, flen)
			if _, err := r.ReadAt(b, fext*bs); err != nil {
				return nil, fmt.Errorf("reading %s: %w", name, err)
			}
			return b, nil
		}
		off += n
	}
	return nil, fmt.Errorf("%s not found on the ISO 9660 filesystem", name)
}

func isoName(s string) string {
	s, _, _ = strings.Cut(s, ";")
	s = strings.TrimSuffix(s, ".")
	return strings.ReplaceAll(strings.ToLower(s), "_", "-")
}
