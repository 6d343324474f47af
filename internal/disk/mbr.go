package disk

import (
	"encoding/binary"
	"fmt"
	"io"
)

type mbrEntry struct {
	boot  bool
	typ   byte
	start uint32 // LBA, relative to the table's base
	count uint32
}

func parseMBRSector(b []byte) (entries []mbrEntry, valid bool) {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xaa {
		return nil, false
	}
	for i := 0; i < 4; i++ {
		e := b[446+16*i : 446+16*(i+1)]
		entries = append(entries, mbrEntry{
			boot:  e[0] == 0x80,
			typ:   e[4],
			start: binary.LittleEndian.Uint32(e[8:12]),
			count: binary.LittleEndian.Uint32(e[12:16]),
		})
	}
	return entries, true
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0f || t == 0x85 }

// maxLogical bounds the EBR chain walk; Linux itself stops well before this.
const maxLogical = 128

func readMBR(r io.ReaderAt, size int64, entries []mbrEntry) (*Table, error) {
	t := &Table{Kind: "mbr"}
	sectors := uint64(size / SectorSize)
	var ext *mbrEntry
	for i, e := range entries {
		if e.typ == 0 || e.count == 0 {
			continue
		}
		if uint64(e.start)+uint64(e.count) > sectors {
			return nil, &Error{int64(446 + 16*i), fmt.Sprintf("MBR partition %d (sectors %d+%d) lies outside the %d-sector disk", i+1, e.start, e.count, sectors)}
		}
		if isExtended(e.typ) {
			if ext != nil {
				return nil, &Error{int64(446 + 16*i), "MBR has more than one extended partition"}
			}
			ext = &entries[i]
		}
		t.Partitions = append(t.Partitions, mbrPartition(i+1, e, 0))
	}
	if ext == nil {
		return t, nil
	}
	// Walk the EBR chain: each EBR's first entry is a logical partition relative to
	// that EBR; its second entry links to the next EBR relative to the extended
	// partition's start.
	base := uint64(ext.start)
	next := uint64(0)
	seen := map[uint64]bool{}
	for n := 0; ; n++ {
		if n >= maxLogical {
			return nil, &Error{int64(base+next) * SectorSize, "extended partition chain is too long"}
		}
		lba := base + next
		if seen[lba] {
			return nil, &Error{int64(lba) * SectorSize, "extended partition chain loops"}
		}
		seen[lba] = true
		if lba >= base+uint64(ext.count) {
			return nil, &Error{int64(lba) * SectorSize, "extended boot record lies outside the extended partition"}
		}
		sec := make([]byte, SectorSize)
		if _, err := r.ReadAt(sec, int64(lba)*SectorSize); err != nil {
			return nil, fmt.Errorf("disk: read extended boot record at sector %d: %w", lba, err)
		}
		ebr, ok := parseMBRSector(sec)
		if !ok {
			return nil, &Error{int64(lba) * SectorSize, "extended boot record has no 0x55AA signature"}
		}
		if l := ebr[0]; l.typ != 0 && l.count != 0 {
			start := lba + uint64(l.start)
			if start+uint64(l.count) > base+uint64(ext.count) {
				return nil, &Error{int64(lba) * SectorSize, fmt.Sprintf("logical partition %d lies outside the extended partition", 5+len(t.Partitions)-countPrimary(t))}
			}
			p := mbrPartition(5+n, l, 0)
			p.Start = int64(start) * SectorSize
			p.Logical = true
			t.Partitions = append(t.Partitions, p)
		}
		link := ebr[1]
		if link.typ == 0 || !isExtended(link.typ) || link.start == 0 {
			break
		}
		next = uint64(link.start)
	}
	return t, nil
}

func countPrimary(t *Table) int {
	n := 0
	for _, p := range t.Partitions {
		if !p.Logical {
			n++
		}
	}
	return n
}

func mbrPartition(index int, e mbrEntry, base uint64) Partition {
	typ := fmt.Sprintf("0x%02x", e.typ)
	return Partition{
		Index:    index,
		Start:    int64(base+uint64(e.start)) * SectorSize,
		Size:     int64(e.count) * SectorSize,
		Type:     typ,
		TypeName: MBRTypeName(e.typ),
		Bootable: e.boot,
	}
}
