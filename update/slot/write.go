package slot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/vaultpam/appliance/rootfs/command"
)

// ErrTooBig is wrapped when a part does not fit its partition.
var ErrTooBig = errors.New("does not fit the partition")

// WritePart copies exactly size bytes of r to the start of the partition
// p and makes them durable (fsync) before it returns. It refuses a part
// larger than the partition before writing anything. A block device is
// opened exclusively (O_EXCL): the kernel refuses that while the device is
// in use, so the running slot's partitions, held by dm-verity, cannot be
// opened for writing at all. r's errors (a part whose digest does not
// match) end the copy and are returned as they are.
func WritePart(p Partition, r io.Reader, size int64) error {
	return WritePartHeadLast(p, r, size, 0)
}

// WritePartHeadLast is WritePart, but the first head bytes are held back
// and written (and synced) only after the rest is durable: a verity hash
// tree's superblock, which names the slot's UUID, appears only once the
// tree under it is whole. Until then the partition's first head bytes are
// whatever they were (the install zeroed them before).
func WritePartHeadLast(p Partition, r io.Reader, size, head int64) error {
	if size > p.Size {
		return fmt.Errorf("%s: %d bytes %w (%d bytes)", p.Label, size, ErrTooBig, p.Size)
	}
	head = min(head, size)
	flags := os.O_WRONLY
	if fi, err := os.Stat(p.Path); err == nil && fi.Mode()&os.ModeDevice != 0 {
		flags |= syscall.O_EXCL
	}
	f, err := os.OpenFile(p.Path, flags, 0)
	if err != nil {
		return fmt.Errorf("opening %s (%s) for writing: %w", p.Label, p.Path, err)
	}
	defer f.Close()
	first := make([]byte, head)
	if _, err := io.ReadFull(r, first); err != nil {
		return fmt.Errorf("writing %s: %w", p.Label, err)
	}
	if _, err := f.Seek(head, io.SeekStart); err != nil {
		return fmt.Errorf("writing %s: %w", p.Label, err)
	}
	n, err := io.CopyBuffer(f, io.LimitReader(r, size-head), make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("writing %s: %w", p.Label, err)
	}
	if n != size-head {
		return fmt.Errorf("writing %s: the part ended after %d of %d bytes", p.Label, head+n, size)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("flushing %s: %w", p.Label, err)
	}
	if head > 0 {
		if _, err := f.WriteAt(first, 0); err != nil {
			return fmt.Errorf("writing the head of %s: %w", p.Label, err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("flushing %s: %w", p.Label, err)
		}
	}
	return f.Close()
}

// Verify runs `veritysetup verify` over slot s against rootHash: every
// data block is read back and checked against the hash tree and the hash
// tree against the root hash. veritysetup "" means the one on PATH.
func Verify(ctx context.Context, veritysetup string, s Slot, rootHash string) error {
	if veritysetup == "" {
		veritysetup = "veritysetup"
	}
	if _, err := command.Run(ctx, nil, nil, veritysetup, "verify", s.Root.Path, s.Verity.Path, rootHash); err != nil {
		return fmt.Errorf("slot %s does not verify against root hash %s: %w", s.Name, rootHash, err)
	}
	return nil
}
