package pkgdb

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver (pure Go)
)

// SQLiteBlobs reads the Packages table (hnum, blob) of an rpmdb.sqlite, as rpm
// ≥ 4.16 writes it (RHEL 9, Fedora, Azure Linux 3.0). The database is read in
// memory: committed frames of its write-ahead log are applied first, and the
// header is switched out of WAL mode so SQLite needs no -shm file.
func SQLiteBlobs(ctx context.Context, b, wal []byte, file string) ([]HeaderBlob, []Issue) {
	var issues []Issue
	img := append([]byte(nil), b...)
	if len(wal) > 0 {
		var err error
		img, err = applyWAL(img, wal)
		if err != nil {
			issues = append(issues, Issue{Path: file + "-wal", Reason: err.Error() + "; read without it"})
			img = append(img[:0], b...)
		}
	}
	if len(img) < 100 {
		return nil, append(issues, Issue{Path: file, Reason: "SQLite file shorter than its header"})
	}
	img[18], img[19] = 1, 1 // legacy (rollback journal) mode: no -wal, no -shm
	blobs, err := querySQLite(ctx, img)
	if err != nil {
		return blobs, append(issues, Issue{Path: file, Reason: "sqlite: " + err.Error()})
	}
	return blobs, issues
}

func querySQLite(ctx context.Context, img []byte) ([]HeaderBlob, error) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		d, ok := dc.(interface{ Deserialize([]byte) error })
		if !ok {
			return errors.New("driver cannot deserialize")
		}
		return d.Deserialize(img)
	})
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = 1"); err != nil {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, "SELECT hnum, blob FROM Packages ORDER BY hnum")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []HeaderBlob
	for rows.Next() {
		var (
			n    int64
			blob []byte
		)
		if err := rows.Scan(&n, &blob); err != nil {
			return out, err
		}
		out = append(out, HeaderBlob{Record: int(n), Data: blob})
	}
	return out, rows.Err()
}

// applyWAL applies the committed frames of an SQLite write-ahead log to the
// database image (sqlite wal.c: a 32-byte header, then frames of a 24-byte header
// and one page; a frame counts when its salts match the header's and the running
// checksum holds; pages up to the last commit frame are applied).
func applyWAL(db, wal []byte) ([]byte, error) {
	if len(wal) < 32 {
		return db, nil
	}
	magic := binary.BigEndian.Uint32(wal[0:4])
	if magic != 0x377f0682 && magic != 0x377f0683 {
		return nil, errors.New("sqlite: -wal file has no WAL magic")
	}
	var order binary.ByteOrder = binary.LittleEndian
	if magic&1 == 1 {
		order = binary.BigEndian
	}
	pageSize := int(binary.BigEndian.Uint32(wal[8:12]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize > 65536 || pageSize&(pageSize-1) != 0 {
		return nil, fmt.Errorf("sqlite: WAL page size %d is invalid", pageSize)
	}
	s1, s2 := walChecksum(order, wal[0:24], 0, 0)
	if s1 != binary.BigEndian.Uint32(wal[24:28]) || s2 != binary.BigEndian.Uint32(wal[28:32]) {
		return nil, errors.New("sqlite: WAL header checksum mismatch")
	}
	salt := wal[16:24]
	type frame struct {
		pgno uint32
		data []byte
	}
	var pending, committed []frame
	dbPages := uint32(0)
	for off := 32; off+24+pageSize <= len(wal); off += 24 + pageSize {
		fh := wal[off : off+24]
		if string(fh[8:16]) != string(salt) {
			break
		}
		page := wal[off+24 : off+24+pageSize]
		s1, s2 = walChecksum(order, fh[0:8], s1, s2)
		s1, s2 = walChecksum(order, page, s1, s2)
		if s1 != binary.BigEndian.Uint32(fh[16:20]) || s2 != binary.BigEndian.Uint32(fh[20:24]) {
			break
		}
		pending = append(pending, frame{binary.BigEndian.Uint32(fh[0:4]), page})
		if n := binary.BigEndian.Uint32(fh[4:8]); n != 0 {
			committed = append(committed, pending...)
			pending = pending[:0]
			dbPages = n
		}
	}
	if len(committed) == 0 {
		return db, nil
	}
	if uint64(dbPages)*uint64(pageSize) > 1<<31 {
		return nil, fmt.Errorf("sqlite: WAL commit claims %d pages", dbPages)
	}
	out := make([]byte, int(dbPages)*pageSize)
	copy(out, db)
	for _, f := range committed {
		if f.pgno == 0 || f.pgno > dbPages {
			continue
		}
		copy(out[int(f.pgno-1)*pageSize:], f.data)
	}
	return out, nil
}

func walChecksum(order binary.ByteOrder, b []byte, s1, s2 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s1 += order.Uint32(b[i:]) + s2
		s2 += order.Uint32(b[i+4:]) + s1
	}
	return s1, s2
}
