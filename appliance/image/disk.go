package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vaultpam/appliance/rootfs/command"
)

// writeDisk creates a sparse file of the layout's size at path, writes the
// GPT with sfdisk and copies each partition image to its offset. Zero
// chunks are skipped, so empty space stays a hole.
func writeDisk(ctx context.Context, path string, l Layout, images map[string]string) error {
	os.Remove(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(l.DiskSize); err != nil {
		return err
	}
	if _, err := command.Run(ctx, nil, strings.NewReader(l.sfdiskScript()), "sfdisk",
		"--quiet", "--no-reread", "--no-tell-kernel", "--wipe", "never", path); err != nil {
		return fmt.Errorf("writing the partition table: %w", err)
	}
	for _, p := range l.Partitions {
		img, ok := images[p.Label]
		if !ok {
			continue
		}
		if err := copyInto(f, p, img); err != nil {
			return err
		}
	}
	return f.Sync()
}

func copyInto(disk *os.File, p Partition, img string) error {
	in, err := os.Open(img)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() > p.Size {
		return fmt.Errorf("%s is %d bytes, more than its partition %s (%d bytes)", img, st.Size(), p.Label, p.Size)
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for off := int64(0); ; {
		n, err := io.ReadFull(in, buf)
		if n > 0 {
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, werr := disk.WriteAt(buf[:n], p.Offset+off); werr != nil {
					return fmt.Errorf("writing %s: %w", p.Label, werr)
				}
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", img, err)
		}
	}
}
