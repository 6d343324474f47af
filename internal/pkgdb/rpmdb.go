package pkgdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/adler32"
	"io/fs"
	"path"
)

// rpmDirs are where rpm keeps its database, newest layout first. Fedora and
// openSUSE link var/lib/rpm to usr/lib/sysimage/rpm; the same file is read once.
var rpmDirs = []string{"usr/lib/sysimage/rpm", "var/lib/rpm"}

// rpm database formats.
const (
	RPMFormatSQLite = "sqlite"
	RPMFormatBDB    = "bdb"
	RPMFormatNDB    = "ndb"
)

// resolver is what rootfs.FS offers to tell two paths to one file apart.
type resolver interface {
	Resolve(name string, follow bool) (string, error)
}

// readRPM reads the first database of each rpm directory: rpmdb.sqlite, then
// Packages.db (NDB), then Packages (Berkeley DB) — rpm itself uses only the one
// its configuration names, and leftovers of a migration stay behind.
func readRPM(ctx context.Context, fsys fs.FS, _ Options, inv *Inventory) (bool, error) {
	found := false
	seen := map[string]bool{}
	for _, dir := range rpmDirs {
		for _, cand := range []struct{ name, format string }{
			{"rpmdb.sqlite", RPMFormatSQLite}, {"Packages.db", RPMFormatNDB}, {"Packages", RPMFormatBDB},
		} {
			p := path.Join(dir, cand.name)
			info, err := fs.Stat(fsys, p)
			if err != nil || info.IsDir() {
				continue
			}
			key := p
			if r, ok := fsys.(resolver); ok {
				if rp, err := r.Resolve(p, true); err == nil {
					key = rp
				}
			}
			if seen[key] {
				break
			}
			seen[key] = true
			found = true
			inv.Databases = append(inv.Databases, p)
			b, err := fs.ReadFile(fsys, p)
			if err != nil {
				inv.Issues = append(inv.Issues, Issue{Path: p, Reason: err.Error()})
				break
			}
			var wal []byte
			if cand.format == RPMFormatSQLite {
				wal, _ = fs.ReadFile(fsys, p+"-wal")
			}
			blobs, issues := RPMHeaderBlobs(ctx, b, wal, p)
			inv.Issues = append(inv.Issues, issues...)
			for _, blob := range blobs {
				h, err := ParseHeader(blob.Data)
				if err != nil {
					inv.Issues = append(inv.Issues, Issue{Path: p, Record: blob.Record, Reason: err.Error()})
					continue
				}
				pkg, err := PackageFromHeader(h, fmt.Sprintf("%s#%d", p, blob.Record))
				if err != nil {
					inv.Issues = append(inv.Issues, Issue{Path: p, Record: blob.Record, Reason: err.Error()})
					continue
				}
				pkg.Header = blob.Data
				inv.Packages = append(inv.Packages, pkg)
			}
			break
		}
		if err := ctx.Err(); err != nil {
			return found, err
		}
	}
	return found, nil
}

// HeaderBlob is one rpm header read from a database, with its record number.
type HeaderBlob struct {
	Record int
	Data   []byte
}

// DetectRPMFormat tells an rpm database's format from its first bytes; "" when
// it is none vouch reads.
func DetectRPMFormat(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("SQLite format 3\x00")):
		return RPMFormatSQLite
	case len(b) >= 4 && string(b[:4]) == "RpmP":
		return RPMFormatNDB
	case len(b) >= 16 && (binary.LittleEndian.Uint32(b[12:16]) == bdbHashMagic || binary.BigEndian.Uint32(b[12:16]) == bdbHashMagic):
		return RPMFormatBDB
	}
	return ""
}

// RPMHeaderBlobs returns the header blobs of an rpm database of any format. wal
// is the content of an SQLite database's -wal file (nil when there is none).
func RPMHeaderBlobs(ctx context.Context, b, wal []byte, file string) ([]HeaderBlob, []Issue) {
	switch DetectRPMFormat(b) {
	case RPMFormatSQLite:
		return SQLiteBlobs(ctx, b, wal, file)
	case RPMFormatNDB:
		return NDBBlobs(b, file)
	case RPMFormatBDB:
		return BDBBlobs(b, file)
	}
	head := b
	if len(head) > 16 {
		head = head[:16]
	}
	return nil, []Issue{{Path: file, Reason: fmt.Sprintf("unknown rpm database format (first bytes %q)", head)}}
}

// NDB (rpm lib/backend/ndb/rpmpkg.c): a 32-byte header, slot pages of 16-byte
// slots {magic "Slot", pkgidx, blkoff, blkcnt}, then blobs in 16-byte blocks:
// {magic "BlbS", pkgidx, generation, length}, the header, padding, and a tail
// {adler32, length, magic "BlbE"}. All little-endian.
const (
	ndbPageSize  = 4096
	ndbSlotSize  = 16
	ndbBlkSize   = 16
	ndbHeadSize  = 16
	ndbTailSize  = 12
	ndbSlotMagic = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbBlobMagic = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbTailMagic = 'B' | 'l'<<8 | 'b'<<16 | 'E'<<24
)

// NDBBlobs reads the package blobs of an NDB Packages.db.
func NDBBlobs(b []byte, file string) ([]HeaderBlob, []Issue) {
	if len(b) < 32 || string(b[:4]) != "RpmP" {
		return nil, []Issue{{Path: file, Reason: "not an NDB package database (no RpmP magic)"}}
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[4:8]); v != 0 {
		return nil, []Issue{{Path: file, Reason: fmt.Sprintf("NDB version %d is not supported", v)}}
	}
	npages := uint64(le.Uint32(b[12:16]))
	if npages == 0 || npages*ndbPageSize > uint64(len(b)) {
		return nil, []Issue{{Path: file, Reason: fmt.Sprintf("NDB slot area of %d pages extends past the %d-byte file", npages, len(b))}}
	}
	var (
		out    []HeaderBlob
		issues []Issue
	)
	minBlk := npages * ndbPageSize / ndbBlkSize
	for off := uint64(32); off < npages*ndbPageSize; off += ndbSlotSize {
		s := b[off : off+ndbSlotSize]
		slotNo := int(off / ndbSlotSize)
		if le.Uint32(s[0:4]) != ndbSlotMagic {
			issues = append(issues, Issue{Path: file, Record: slotNo, Reason: "NDB slot without its magic; slot area corrupt"})
			break
		}
		pkgidx, blkoff, blkcnt := le.Uint32(s[4:8]), uint64(le.Uint32(s[8:12])), uint64(le.Uint32(s[12:16]))
		if blkoff == 0 {
			continue
		}
		rec := int(pkgidx)
		start, end := blkoff*ndbBlkSize, (blkoff+blkcnt)*ndbBlkSize
		if pkgidx == 0 || blkoff < minBlk || blkcnt*ndbBlkSize < ndbHeadSize+ndbTailSize || end > uint64(len(b)) {
			issues = append(issues, Issue{Path: file, Record: rec, Reason: fmt.Sprintf("NDB slot %d points outside the file (block %d, %d blocks)", slotNo, blkoff, blkcnt)})
			continue
		}
		blob := b[start:end]
		if le.Uint32(blob[0:4]) != ndbBlobMagic || le.Uint32(blob[4:8]) != pkgidx {
			issues = append(issues, Issue{Path: file, Record: rec, Reason: "NDB blob header does not match its slot"})
			continue
		}
		n := uint64(le.Uint32(blob[12:16]))
		if (ndbHeadSize+n+ndbTailSize+ndbBlkSize-1)/ndbBlkSize != blkcnt {
			issues = append(issues, Issue{Path: file, Record: rec, Reason: fmt.Sprintf("NDB blob length %d does not fit its %d blocks", n, blkcnt)})
			continue
		}
		tail := blob[len(blob)-ndbTailSize:]
		if le.Uint32(tail[8:12]) != ndbTailMagic || uint64(le.Uint32(tail[4:8])) != n {
			issues = append(issues, Issue{Path: file, Record: rec, Reason: "NDB blob tail is corrupt"})
			continue
		}
		if adler32.Checksum(blob[:len(blob)-ndbTailSize]) != le.Uint32(tail[0:4]) {
			issues = append(issues, Issue{Path: file, Record: rec, Reason: "NDB blob checksum (adler32) mismatch"})
			continue
		}
		out = append(out, HeaderBlob{Record: rec, Data: blob[ndbHeadSize : ndbHeadSize+n]})
	}
	return out, issues
}

// Berkeley DB hash databases (libdb src/dbinc/db_page.h), as rpm ≤ 4.15 wrote
// Packages: a metadata page, then hash pages whose items come in key/value
// pairs; each value is an off-page item {type 3, pgno, length} pointing to a
// chain of overflow pages.
const (
	bdbHashMagic    = 0x061561
	bdbPageHdr      = 26
	bdbPHashUnsort  = 2
	bdbPOverflow    = 7
	bdbPHashMeta    = 8
	bdbPHash        = 13
	bdbHOffPage     = 3
	bdbMaxChainPage = 1 << 20
)

// BDBBlobs reads the values of a Berkeley DB hash database (rpm's Packages).
func BDBBlobs(b []byte, file string) ([]HeaderBlob, []Issue) {
	if len(b) < 512 {
		return nil, []Issue{{Path: file, Reason: "Berkeley DB file shorter than its metadata page"}}
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if bo.Uint32(b[12:16]) != bdbHashMagic {
		bo = binary.BigEndian
		if bo.Uint32(b[12:16]) != bdbHashMagic {
			return nil, []Issue{{Path: file, Reason: "not a Berkeley DB hash database"}}
		}
	}
	if b[24] != 0 {
		return nil, []Issue{{Path: file, Reason: "encrypted Berkeley DB is not supported"}}
	}
	if b[25] != bdbPHashMeta {
		return nil, []Issue{{Path: file, Reason: fmt.Sprintf("Berkeley DB metadata page has type %d", b[25])}}
	}
	pageSize := uint64(bo.Uint32(b[20:24]))
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return nil, []Issue{{Path: file, Reason: fmt.Sprintf("Berkeley DB page size %d is invalid", pageSize)}}
	}
	last := uint64(bo.Uint32(b[32:36]))
	npages := uint64(len(b)) / pageSize
	var (
		out    []HeaderBlob
		issues []Issue
	)
	if last >= npages {
		issues = append(issues, Issue{Path: file, Reason: fmt.Sprintf("Berkeley DB claims %d pages, the file holds %d", last+1, npages)})
		last = npages - 1
	}
	page := func(n uint64) []byte { return b[n*pageSize : (n+1)*pageSize] }
	values := 0
	for pg := uint64(1); pg <= last; pg++ {
		p := page(pg)
		if p[25] != bdbPHash && p[25] != bdbPHashUnsort {
			continue
		}
		entries := int(bo.Uint16(p[20:22]))
		if bdbPageHdr+2*entries > len(p) {
			issues = append(issues, Issue{Path: file, Record: int(pg), Reason: fmt.Sprintf("hash page %d claims %d entries", pg, entries)})
			continue
		}
		for i := 1; i < entries; i += 2 { // values are the odd items
			at := int(bo.Uint16(p[bdbPageHdr+2*i:]))
			if at+12 > len(p) || p[at] != bdbHOffPage {
				continue // rpm's header values are always off-page; the rest is bookkeeping
			}
			first := uint64(bo.Uint32(p[at+4 : at+8]))
			total := uint64(bo.Uint32(p[at+8 : at+12]))
			values++
			rec := values
			if total > maxHeaderData {
				issues = append(issues, Issue{Path: file, Record: rec, Reason: fmt.Sprintf("value of %d bytes is too large", total)})
				continue
			}
			data, err := bdbChain(b, bo, pageSize, npages, first, total)
			if err != nil {
				issues = append(issues, Issue{Path: file, Record: rec, Reason: err.Error()})
				continue
			}
			out = append(out, HeaderBlob{Record: rec, Data: data})
		}
	}
	return out, issues
}

func bdbChain(b []byte, bo binary.ByteOrder, pageSize, npages, pg, total uint64) ([]byte, error) {
	out := make([]byte, 0, total)
	seen := 0
	for pg != 0 {
		if pg >= npages {
			return nil, fmt.Errorf("overflow page %d outside the file", pg)
		}
		if seen++; seen > bdbMaxChainPage {
			return nil, errors.New("overflow chain loops")
		}
		p := b[pg*pageSize : (pg+1)*pageSize]
		if p[25] != bdbPOverflow {
			return nil, fmt.Errorf("page %d in an overflow chain has type %d", pg, p[25])
		}
		n := uint64(bo.Uint16(p[22:24])) // hf_offset holds the bytes used on an overflow page
		if bdbPageHdr+n > pageSize {
			return nil, fmt.Errorf("overflow page %d claims %d bytes", pg, n)
		}
		out = append(out, p[bdbPageHdr:bdbPageHdr+n]...)
		if uint64(len(out)) > total {
			return nil, fmt.Errorf("overflow chain longer than its %d-byte value", total)
		}
		pg = uint64(bo.Uint32(p[16:20]))
	}
	if uint64(len(out)) != total {
		return nil, fmt.Errorf("overflow chain holds %d of %d bytes", len(out), total)
	}
	return out, nil
}
