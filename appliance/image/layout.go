package image

import (
	"crypto/sha256"
	"fmt"
)

// Partition type GUIDs (UEFI; the Discoverable Partitions Specification for
// the x86-64 root and its verity data).
const (
	TypeESP        = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeRootX86    = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	TypeVerityX86  = "2C7357ED-EBD2-46D9-AEC9-2D8F30B4B4B2"
	TypeLinuxData  = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	firstLBA       = 2048 // 1 MiB alignment
	gptTailSectors = 2048 // keep 1 MiB at the end for the backup GPT
)

// Partition labels, in table order (ARCHITECTURE.md, "The disk").
const (
	LabelESP     = "VPAM-ESP"
	LabelRootA   = "VPAM-ROOT-A"
	LabelVerityA = "VPAM-VERITY-A"
	LabelRootB   = "VPAM-ROOT-B"
	LabelVerityB = "VPAM-VERITY-B"
	LabelConfig  = "VPAM-CONFIG"
	LabelData    = "VPAM-DATA"
)

// Partition is one entry of the layout and of image.json.
type Partition struct {
	Number int    `json:"number"`
	Label  string `json:"label"`
	Type   string `json:"type"`
	UUID   string `json:"uuid"`
	FS     string `json:"fs"` // vfat, squashfs, verity, ext4 or "" (empty slot)
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

// Layout is the GPT of the disk.
type Layout struct {
	DiskUUID   string      `json:"disk_uuid"`
	DiskSize   int64       `json:"disk_size"`
	Partitions []Partition `json:"partitions"`
}

// verityHashSize is the size of a dm-verity hash device (4 KiB blocks,
// SHA-256, with its superblock) for dataSize bytes of data, rounded up to MiB.
func verityHashSize(dataSize int64) int64 {
	const block = 4096
	const perBlock = block / sha256.Size
	blocks := (dataSize + block - 1) / block
	total := int64(1) // superblock
	for blocks > 1 {
		blocks = (blocks + perBlock - 1) / perBlock
		total += blocks
	}
	return roundUp(total*block, MiB)
}

func roundUp(v, to int64) int64 { return (v + to - 1) / to * to }

// rootSlotSize is the size of each root slot for a root image of size n.
func rootSlotSize(n int64) int64 {
	head := n / 2
	if head < 64*MiB {
		head = 64 * MiB
	}
	return roundUp(n+head, 64*MiB)
}

// planLayout places the partitions. seed (the root image's sha256) makes
// the disk and partition UUIDs a function of the content.
func planLayout(o Options, rootSize int64, seed string) Layout {
	slot := o.RootSlotSize
	if slot == 0 {
		slot = rootSlotSize(rootSize)
	}
	hash := verityHashSize(slot)
	specs := []struct {
		label, typ, fs string
		size           int64
	}{
		{LabelESP, TypeESP, "vfat", o.ESPSize},
		{LabelRootA, TypeRootX86, "squashfs", slot},
		{LabelVerityA, TypeVerityX86, "verity", hash},
		{LabelRootB, TypeRootX86, "", slot},
		{LabelVerityB, TypeVerityX86, "", hash},
		{LabelConfig, TypeLinuxData, "ext4", o.ConfigSize},
		{LabelData, TypeLinuxData, "ext4", o.DataSize},
	}
	l := Layout{DiskUUID: derivedUUID(seed, "disk")}
	off := int64(firstLBA * 512)
	for i, s := range specs {
		l.Partitions = append(l.Partitions, Partition{
			Number: i + 1, Label: s.label, Type: s.typ, FS: s.fs,
			UUID: derivedUUID(seed, "partition "+s.label), Offset: off, Size: s.size,
		})
		off += s.size
	}
	l.DiskSize = off + gptTailSectors*512
	return l
}

// sfdiskScript renders the layout for sfdisk.
func (l Layout) sfdiskScript() string {
	s := fmt.Sprintf("label: gpt\nlabel-id: %s\nunit: sectors\nfirst-lba: %d\n", l.DiskUUID, firstLBA)
	for _, p := range l.Partitions {
		s += fmt.Sprintf("start=%d, size=%d, type=%s, uuid=%s, name=%q\n", p.Offset/512, p.Size/512, p.Type, p.UUID, p.Label)
	}
	return s
}

// byLabel returns the partition with the label.
func (l Layout) byLabel(label string) Partition {
	for _, p := range l.Partitions {
		if p.Label == label {
			return p
		}
	}
	panic("image: no partition " + label)
}

// derivedUUID is an RFC 9562 version-8 UUID from sha256(seed, purpose).
func derivedUUID(seed, purpose string) string {
	b := sha256.Sum256([]byte("vaultpam uuid\x00" + seed + "\x00" + purpose))
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
