package measure

import (
	"encoding/binary"
	"fmt"
)

// walk steps over the log's event headers without interpreting the data,
// to name the event and offset where a log stops being well-formed (a
// truncated log, a digest count or size that runs past the end, an unknown
// digest algorithm). go-attestation reports these without a position. The
// formats are the TCG PC Client Platform Firmware Profile's: TCG_PCR_EVENT
// (SHA-1, the first event always) and TCG_PCR_EVENT2 (crypto-agile) after a
// "Spec ID Event03" EV_NO_ACTION.
func walk(b []byte, source string) error {
	le := binary.LittleEndian
	bad := func(seq int, off int, format string, args ...any) error {
		return &ParseError{Source: source, Seq: seq, Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
	}
	// TCG_PCR_EVENT: PCRIndex, EventType, SHA1 digest, EventSize, Event.
	const first = 4 + 4 + 20 + 4
	if len(b) < first {
		return bad(0, 0, "%d bytes: shorter than the %d-byte header of the first event (truncated log)", len(b), first)
	}
	size := int64(le.Uint32(b[28:]))
	if int64(len(b)-first) < size {
		return bad(0, 0, "event data of %d bytes runs past the end of the log (%d bytes left)", size, len(b)-first)
	}
	data := b[first : first+int(size)]
	off := first + int(size)
	algs, agile := specIDAlgs(le.Uint32(b[4:]), data)
	if !agile {
		for seq := 1; off < len(b); seq++ {
			if len(b)-off < first {
				return bad(seq, off, "%d bytes left: shorter than an event header (truncated log)", len(b)-off)
			}
			size := int64(le.Uint32(b[off+28:]))
			if int64(len(b)-off-first) < size {
				return bad(seq, off, "event data of %d bytes runs past the end of the log", size)
			}
			off += first + int(size)
		}
		return nil
	}
	for seq := 1; off < len(b); seq++ {
		start := off
		if len(b)-off < 12 {
			return bad(seq, start, "%d bytes left: shorter than an event header (truncated log)", len(b)-off)
		}
		n := le.Uint32(b[off+8:])
		off += 12
		if n > uint32(len(algs)) {
			return bad(seq, start, "digest count %d is more than the %d algorithms the log declares", n, len(algs))
		}
		for i := uint32(0); i < n; i++ {
			if len(b)-off < 2 {
				return bad(seq, start, "digest %d of %d runs past the end of the log (truncated)", i+1, n)
			}
			id := le.Uint16(b[off:])
			sz, ok := algs[id]
			if !ok {
				return bad(seq, start, "digest %d has algorithm 0x%04x, which the Spec ID event does not declare", i+1, id)
			}
			off += 2
			if len(b)-off < int(sz) {
				return bad(seq, start, "digest %d (algorithm 0x%04x, %d bytes) runs past the end of the log (truncated)", i+1, id, sz)
			}
			off += int(sz)
		}
		if len(b)-off < 4 {
			return bad(seq, start, "event size runs past the end of the log (truncated)")
		}
		size := int64(le.Uint32(b[off:]))
		off += 4
		if int64(len(b)-off) < size {
			return bad(seq, start, "event data of %d bytes runs past the end of the log (%d bytes left)", size, len(b)-off)
		}
		off += int(size)
	}
	return nil
}

// specIDAlgs decodes a TCG_EfiSpecIdEvent ("Spec ID Event03"): the digest
// algorithms and their sizes. agile is false for a SHA-1 (TPM 1.2) log.
func specIDAlgs(typ uint32, data []byte) (algs map[uint16]uint16, agile bool) {
	const hdr = 16 + 4 + 4 + 4 // signature, platformClass, versions+uintnSize, numberOfAlgorithms
	if typ != uint32(evNoAction) || len(data) < hdr || string(data[:15]) != "Spec ID Event03" {
		return nil, false
	}
	le := binary.LittleEndian
	n := le.Uint32(data[24:])
	algs = map[uint16]uint16{}
	for i := 0; i < int(n) && hdr+4*i+4 <= len(data); i++ {
		p := data[hdr+4*i:]
		algs[le.Uint16(p)] = le.Uint16(p[2:])
	}
	return algs, true
}
