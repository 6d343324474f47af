package secureboot

import (
	"bytes"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// FuzzSBAT feeds the .sbat parser, the SbatLevel parser, the level check,
// shim's preserve rule and the .sbatlevel section parser with the same
// bytes. Seeds: testdata/fuzz/FuzzSBAT and the real sections of Debian's
// shim and GRUB.
func FuzzSBAT(f *testing.F) {
	for _, rel := range []string{shimRel, grubRel} {
		if b := testfixtures.DebSeed(f, rel); b != nil {
			if img, err := authenticode.Parse(b); err == nil {
				for _, name := range []string{".sbat", ".sbatlevel"} {
					if s, ok := img.SectionData(name); ok {
						f.Add(append([]byte(nil), s...), []byte("sbat,1,2025021800\nshim,4\ngrub,5\n"))
					}
				}
			}
		}
	}
	f.Add([]byte(sbatHeader+"grub,4,a,b,c,d\n"), []byte("sbat,1,2024040900\nshim,4\ngrub,4\ngrub.peimage,2\n"))
	f.Fuzz(func(t *testing.T, section, level []byte) {
		entries, err := ParseSBAT(section)
		if err == nil {
			for _, e := range entries {
				if e.Component == "" || e.Generation == "" || e.URL == "" {
					t.Fatalf("empty column accepted: %+v", e)
				}
			}
		}
		l, err := ParseSBATLevel(level)
		if err == nil {
			if len(l.Entries) == 0 {
				t.Fatal("level without entries")
			}
			if r := l.Check(entries); r != nil && r.Generation >= r.Level {
				t.Fatalf("revocation %+v with generation not below the level", r)
			}
		}
		_ = preserveLevel(level, 0x03, false, string(section))
		_ = preserveLevel(section, 0x07, true, string(level))
		if e, err := ParseSBATLevelSection(section); err == nil {
			if bytes.IndexByte([]byte(e.Previous), 0) >= 0 || bytes.IndexByte([]byte(e.Latest), 0) >= 0 {
				t.Fatal("payload holds a NUL")
			}
		}
	})
}

// FuzzVendorCert feeds the .vendor_cert parser. Seeds: testdata/fuzz and
// Debian's shim's real section.
func FuzzVendorCert(f *testing.F) {
	if b := testfixtures.DebSeed(f, shimRel); b != nil {
		if img, err := authenticode.Parse(b); err == nil {
			if s, ok := img.SectionData(".vendor_cert"); ok {
				f.Add(append([]byte(nil), s...))
			}
		}
	}
	f.Add(vendorCertSection(nil, []efi.SignatureList{{Type: efi.CertSHA256GUID, Signatures: []efi.SignatureData{{Data: make([]byte, 32)}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		vc, err := ParseVendorCert(b)
		if err != nil {
			return
		}
		for _, l := range append(append([]efi.SignatureList(nil), vc.DB...), vc.DBX...) {
			for _, s := range l.Signatures {
				if uint32(len(s.Data))+16 != l.SignatureSize {
					t.Fatalf("entry of %d bytes in a list of %d", len(s.Data), l.SignatureSize)
				}
			}
		}
		_ = x509Entries(vc.DB, "vendor db")
		_ = x509Entries(vc.DBX, "vendor dbx")
	})
}
