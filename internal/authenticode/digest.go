package authenticode

import (
	"crypto"
	"hash"
	"sort"
)

// Digest returns the Authenticode image hash with h, computed step by step as
// edk2's DxeImageVerificationLib HashPeImage does (PE/COFF specification,
// "Calculating the PE Image Hash"):
//
//  1. the headers from offset 0 up to the CheckSum field;
//  2. from after CheckSum up to the Certificate Table data directory entry, and
//     from after that entry up to SizeOfHeaders (when NumberOfRvaAndSizes <= 4
//     there is no such entry and everything after CheckSum up to SizeOfHeaders
//     is hashed);
//  3. every section with a non-zero SizeOfRawData, sorted (stably) by
//     PointerToRawData, SizeOfRawData bytes each;
//  4. SUM_OF_BYTES_HASHED = SizeOfHeaders + the SizeOfRawData of those
//     sections; when the file is longer, the bytes from file offset
//     SUM_OF_BYTES_HASHED, FileSize - SUM_OF_BYTES_HASHED - CertificateTable.Size
//     of them.
//
// Step 4 is edk2's, not the specification's "from the end of the last
// section": trailing data starts at SUM_OF_BYTES_HASHED even when sections
// leave gaps or overlap, and the certificate table is assumed to be at the end
// of the file. When it is not, edk2 (and so Digest) hashes whatever lies in
// that range, possibly part of the table, and leaves out the true tail. When
// FileSize < SUM_OF_BYTES_HASHED + CertificateTable.Size edk2's hashing fails
// and Digest returns nil, as it does for an unavailable h or headers that
// edk2's PE/COFF loader would refuse (SizeOfHeaders past the end of the file or
// ending inside the fields being skipped).
//
// The result is cached per algorithm; callers must not modify it.
func (im *Image) Digest(h crypto.Hash) []byte {
	if !h.Available() {
		return nil
	}
	im.digestMu.Lock()
	defer im.digestMu.Unlock()
	if d, ok := im.digests[h]; ok {
		return d
	}
	d := im.digest(h.New())
	if im.digests == nil {
		im.digests = make(map[crypto.Hash][]byte)
	}
	im.digests[h] = d
	return d
}

func (im *Image) digest(w hash.Hash) []byte {
	b := im.b
	soh := uint64(im.sizeOfHeaders)
	if soh > uint64(len(b)) {
		return nil
	}
	// Steps 1 and 2: the headers without CheckSum and the certificate table
	// directory entry.
	afterChecksum := uint64(im.checksumOff) + 4
	w.Write(b[:im.checksumOff])
	if im.secDirOff < 0 {
		if soh < afterChecksum {
			return nil
		}
		w.Write(b[afterChecksum:soh])
	} else {
		afterDir := uint64(im.secDirOff) + dataDirEntrySize
		if soh < afterDir {
			return nil
		}
		w.Write(b[afterChecksum:im.secDirOff])
		w.Write(b[afterDir:soh])
	}

	// Step 3: sections by file offset. edk2 uses an insertion sort with a
	// strict comparison, which is stable.
	sorted := make([]int, 0, len(im.headers))
	for i, sh := range im.headers {
		if sh.SizeOfRawData != 0 {
			sorted = append(sorted, i)
		}
	}
	sort.SliceStable(sorted, func(x, y int) bool {
		return im.headers[sorted[x]].PointerToRawData < im.headers[sorted[y]].PointerToRawData
	})
	sum := soh
	for _, i := range sorted {
		sh := im.headers[i]
		start, end := uint64(sh.PointerToRawData), uint64(sh.PointerToRawData)+uint64(sh.SizeOfRawData)
		if end > uint64(len(b)) { // Parse rejects this; kept as a guard
			return nil
		}
		w.Write(b[start:end])
		sum += uint64(sh.SizeOfRawData)
	}

	// Step 4: trailing data, edk2's way.
	size := uint64(len(b))
	if size > sum {
		var certSize uint64
		if im.secDirOff >= 0 {
			certSize = uint64(im.certSize)
		}
		switch {
		case size > certSize+sum:
			w.Write(b[sum : size-certSize])
		case size < certSize+sum:
			return nil
		}
	}
	return w.Sum(nil)
}
