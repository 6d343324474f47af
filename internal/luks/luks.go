// Package luks reads the header of a LUKS2 volume (cryptsetup's on-disk
// format: a binary header followed by JSON metadata, kept twice) to say
// what can unlock it without a passphrase: the TPM2 bindings of its tokens,
// Clevis "tpm2" pins (also inside "sss" pins) and systemd-cryptenroll's
// "systemd-tpm2" tokens, with the PCRs each is sealed to. Nothing is
// decrypted and nothing is written.
//
// The layout follows the LUKS2 on-disk format specification (Milan Broz,
// "LUKS2 On-Disk Format Specification", version 1.1.x, sections 2 and 3):
// the primary header at offset 0, the secondary at hdr_size, every number
// big-endian, and a checksum over the whole header area (binary header with
// its checksum field zeroed, then the JSON area). The binary header was
// verified against the headers Debian 12's cryptsetup 2.6 writes (tests).
package luks

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Sizes of the LUKS2 format (spec section 2.1).
const (
	binaryHeaderSize = 4096
	// MaxHeaderSize is the largest hdr_size the format allows (4 MiB).
	MaxHeaderSize = 4 << 20
)

var (
	magicPrimary   = []byte("LUKS\xba\xbe")
	magicSecondary = []byte("SKUL\xba\xbe")
)

// headerSizes are the hdr_size values the format allows; the secondary
// header sits at one of them (spec section 2.1, "secondary header offsets").
var headerSizes = []int64{16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20}

// ErrNotLUKS is a device or file that starts with no LUKS header.
var ErrNotLUKS = errors.New("no LUKS header")

// Error is a LUKS header that cannot be used, naming the device or file.
type Error struct {
	Name   string
	Reason string
	Err    error
}

func (e *Error) Error() string {
	s := "luks: " + e.Name + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Header is a LUKS2 volume's header: identity, keyslots and tokens.
type Header struct {
	Version   int    `json:"version"`
	UUID      string `json:"uuid"`
	Label     string `json:"label,omitempty"`
	Subsystem string `json:"subsystem,omitempty"`
	SeqID     uint64 `json:"seqid"`
	// Size is hdr_size: the binary header and the JSON area.
	Size int64 `json:"size"`
	// Copy says which header was used: "primary", or "secondary" when the
	// primary is damaged (a bad checksum) or older.
	Copy string `json:"copy"`
	// Keyslots are the keyslot ids with their type ("luks2").
	Keyslots map[int]string `json:"keyslots"`
	Tokens   []Token        `json:"tokens,omitempty"`
	// Notes say what was skipped (the other copy's problem, tokens that
	// could not be read).
	Notes []string `json:"notes,omitempty"`
}

// Read reads the LUKS2 header of the volume r (size bytes; name is for
// messages): both copies are checked and the valid one with the higher
// sequence id is used. A volume that starts with no LUKS magic is
// ErrNotLUKS; a LUKS1 header is an *Error saying so.
func Read(r io.ReaderAt, size int64, name string) (*Header, error) {
	head := make([]byte, binaryHeaderSize)
	if _, err := r.ReadAt(head, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, &Error{Name: name, Reason: "read the first 4096 bytes", Err: err}
	}
	if !bytes.HasPrefix(head, magicPrimary) {
		return nil, &Error{Name: name, Reason: "not a LUKS volume", Err: ErrNotLUKS}
	}
	if v := binary.BigEndian.Uint16(head[6:]); v != 2 {
		return nil, &Error{Name: name, Reason: fmt.Sprintf("LUKS version %d: only LUKS2 headers hold tokens (a LUKS1 volume keeps Clevis bindings in LUKSMeta, which vouch does not read)", v)}
	}
	var cands []*Header
	var problems []string
	primary, err := readCopy(r, size, 0, magicPrimary)
	if err != nil {
		problems = append(problems, "primary header: "+err.Error())
	} else {
		cands = append(cands, primary)
	}
	// The secondary header is at the primary's hdr_size, or, if the
	// primary is unreadable, at one of the allowed sizes.
	offs := headerSizes
	if primary != nil {
		offs = []int64{primary.Size}
	}
	var secErr error
	for _, off := range offs {
		if off >= size {
			break
		}
		s, err := readCopy(r, size, off, magicSecondary)
		if err == nil {
			cands = append(cands, s)
			secErr = nil
			break
		}
		secErr = err
	}
	if secErr != nil {
		problems = append(problems, "secondary header: "+secErr.Error())
	}
	if len(cands) == 0 {
		return nil, &Error{Name: name, Reason: "no valid LUKS2 header (" + strings.Join(problems, "; ") + ")"}
	}
	h := cands[0]
	for _, c := range cands[1:] {
		if c.SeqID > h.SeqID {
			h = c
		}
	}
	h.Notes = append(h.Notes, problems...)
	return h, nil
}

// readCopy reads the header copy at off.
func readCopy(r io.ReaderAt, size, off int64, magic []byte) (*Header, error) {
	b := make([]byte, binaryHeaderSize)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("read at offset %d: %w", off, err)
	}
	if !bytes.HasPrefix(b, magic) {
		return nil, fmt.Errorf("no %q magic at offset %d", magic[:4], off)
	}
	h := &Header{
		Version:   int(binary.BigEndian.Uint16(b[6:])),
		Size:      int64(binary.BigEndian.Uint64(b[8:])),
		SeqID:     binary.BigEndian.Uint64(b[16:]),
		Label:     cstr(b[24:72]),
		UUID:      cstr(b[168:208]),
		Subsystem: cstr(b[208:256]),
		Copy:      "primary",
	}
	if off > 0 {
		h.Copy = "secondary"
	}
	if h.Version != 2 {
		return nil, fmt.Errorf("version %d at offset %d", h.Version, off)
	}
	if !allowedSize(h.Size) {
		return nil, fmt.Errorf("hdr_size %d is not one the format allows (16 KiB to 4 MiB, a power of two)", h.Size)
	}
	if hoff := int64(binary.BigEndian.Uint64(b[256:])); hoff != off {
		return nil, fmt.Errorf("hdr_offset %d, but the header is at %d", hoff, off)
	}
	if off+h.Size > size {
		return nil, fmt.Errorf("the header (%d bytes at %d) extends past the end (%d bytes)", h.Size, off, size)
	}
	area := make([]byte, h.Size)
	if _, err := r.ReadAt(area, off); err != nil {
		return nil, fmt.Errorf("read %d bytes at %d: %w", h.Size, off, err)
	}
	alg := cstr(b[72:104])
	newHash := map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}[alg]
	if newHash == nil {
		return nil, fmt.Errorf("checksum algorithm %q is not supported", alg)
	}
	w := newHash()
	sum := append([]byte{}, area[448:448+w.Size()]...)
	clear(area[448 : 448+64])
	w.Write(area)
	if got := w.Sum(nil); !bytes.Equal(got, sum) {
		return nil, fmt.Errorf("%s checksum mismatch (stored %s, computed %s)", alg, hex.EncodeToString(sum), hex.EncodeToString(got))
	}
	js := area[binaryHeaderSize:]
	if i := bytes.IndexByte(js, 0); i >= 0 {
		js = js[:i]
	}
	if err := h.parseJSON(js); err != nil {
		return nil, err
	}
	return h, nil
}

func allowedSize(n int64) bool {
	for _, s := range headerSizes {
		if n == s {
			return true
		}
	}
	return false
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}
