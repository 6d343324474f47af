package authenticode_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"debug/pe"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/authenticode/authenticodetest"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// FuzzParse runs everything Parse gives access to on arbitrary bytes: no
// panic, and RemoveSignature, when it succeeds, keeps the digest.
func FuzzParse(f *testing.F) {
	f.Add(authenticodetest.NewPE(pe.IMAGE_FILE_MACHINE_AMD64))
	f.Add(authenticodetest.NewPE(pe.IMAGE_FILE_MACHINE_I386))
	anchor := authenticodetest.NewCA(f, "Fuzz anchor", nil, authenticodetest.ECDSA()).Cert
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := authenticode.Parse(data)
		if err != nil {
			return
		}
		exercise(im, anchor)
		d := im.Digest(crypto.SHA256)
		out, err := authenticode.RemoveSignature(data, 0)
		if err != nil {
			return
		}
		im2, err := authenticode.Parse(out)
		if err != nil {
			t.Fatalf("RemoveSignature output does not parse: %v", err)
		}
		if d != nil && !bytes.Equal(im2.Digest(crypto.SHA256), d) {
			t.Fatalf("RemoveSignature changed the digest: %x -> %x", d, im2.Digest(crypto.SHA256))
		}
	})
}

func exercise(im *authenticode.Image, anchor *x509.Certificate) {
	_ = im.Machine()
	for _, s := range im.Sections() {
		im.SectionData(s.Name)
	}
	im.SectionData(".sbat")
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		im.Digest(h)
	}
	_ = im.CertTableErr()
	for _, s := range im.Signatures() {
		s.VerifiesWith(anchor)
		for _, c := range s.Chain {
			s.VerifiesWith(c)
			authenticode.TBSHash(c, crypto.SHA256)
			authenticode.IdentifyCA(c)
		}
		_ = s.KnownCA()
	}
}

// FuzzPKCS7 runs the SignedData parser alone, then the whole evaluation of
// the bytes as the single WIN_CERTIFICATE of a small image.
func FuzzPKCS7(f *testing.F) {
	// Real signatures: both of Debian's dual-signed shim.
	if shim := testfixtures.DebSeed(f, shimDeb); shim != nil {
		im, err := authenticode.Parse(shim)
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range im.Signatures() {
			f.Add(s.PKCS7)
		}
	}
	base := authenticodetest.NewPE(pe.IMAGE_FILE_MACHINE_AMD64)
	anchor := authenticodetest.NewCA(f, "Fuzz anchor", nil, authenticodetest.ECDSA()).Cert
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = authenticode.ParseSignedData(data)
		if len(data) == 0 {
			return
		}
		img, err := authenticodetest.AppendWinCertificate(base, authenticode.WinCertTypePKCSSignedData, data)
		if err != nil {
			t.Fatalf("AppendWinCertificate: %v", err)
		}
		im, err := authenticode.Parse(img)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if err := im.CertTableErr(); err != nil {
			t.Fatalf("CertTableErr: %v", err)
		}
		if n := len(im.Signatures()); n == 0 {
			t.Fatal("no signature")
		}
		exercise(im, anchor)
	})
}

// TestFuzzSeeds writes the seed corpus (go test -run TestFuzzSeeds -update):
// small images built and signed here, a few KiB each, and their PKCS#7.
// Without -update it checks that the corpus exists.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz")
	if !*update {
		for _, name := range []string{"FuzzParse", "FuzzPKCS7"} {
			entries, err := os.ReadDir(filepath.Join(dir, name))
			if err != nil || len(entries) == 0 {
				t.Errorf("no seed corpus in %s: run go test ./internal/authenticode -run TestFuzzSeeds -update", filepath.Join(dir, name))
			}
		}
		return
	}
	root := authenticodetest.NewCA(t, "Seed Root", nil, authenticodetest.ECDSA())
	leaf := authenticodetest.NewLeaf(t, "Seed Signer", root, authenticodetest.ECDSA())
	rsaLeaf := authenticodetest.NewLeaf(t, "Seed RSA Signer", nil)
	img := authenticodetest.NewPE(pe.IMAGE_FILE_MACHINE_AMD64,
		authenticodetest.Section{Name: ".text", Data: []byte{0xc3}},
		authenticodetest.Section{Name: ".sbat", Data: []byte("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n")},
	)
	img32 := authenticodetest.NewPE(pe.IMAGE_FILE_MACHINE_I386)

	must := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ec := authenticodetest.Options{Signer: leaf.Cert, Key: leaf.Key, Chain: []*x509.Certificate{root.Cert}, Hash: crypto.SHA256}
	p7 := must(authenticodetest.PKCS7(img, ec))
	nestedOpts := ec
	nestedOpts.Nested = [][]byte{p7}
	p7nested := must(authenticodetest.PKCS7(img, nestedOpts))
	p7rsa := must(authenticodetest.PKCS7(img, authenticodetest.Options{Signer: rsaLeaf.Cert, Key: rsaLeaf.Key, Hash: crypto.SHA1}))
	signed := must(authenticodetest.SignWith(img, ec))
	dual := must(authenticodetest.SignWith(signed, authenticodetest.Options{Signer: rsaLeaf.Cert, Key: rsaLeaf.Key, Hash: crypto.SHA384}))
	guid, _ := hex.DecodeString("9dd2af4adf68ee498aa9347d375665a7")
	guidEntry := must(authenticodetest.AppendWinCertificate(img, authenticode.WinCertTypeEFIGUID, append(guid, p7nested...)))
	signed32 := must(authenticodetest.SignWith(img32, authenticodetest.Options{Signer: leaf.Cert, Key: leaf.Key, Hash: crypto.SHA1}))
	garbage := append(bytes.Clone(signed), 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22)

	seeds := map[string]map[string][]byte{
		"FuzzParse": {
			"unsigned":       img,
			"signed-ecdsa":   signed,
			"dual-signed":    dual,
			"efi-guid-entry": guidEntry,
			"pe32-sha1":      signed32,
			"trailing-bytes": garbage,
		},
		"FuzzPKCS7": {
			"ecdsa-chain":   p7,
			"nested":        p7nested,
			"rsa-self-sha1": p7rsa,
		},
	}
	for target, files := range seeds {
		d := filepath.Join(dir, target)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
