package authenticode_test

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// Real artefacts: Debian's signed boot chain (scripts/fetch-debs.sh, through
// testfixtures) and the public reference data in the repository's testdata/.
var refDir = testfixtures.Data("secureboot")

const (
	shimDeb = "shim-signed/usr/lib/shim/shimx64.efi.signed"
	grubDeb = "grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
)

func shimPath(t testing.TB) string { t.Helper(); return testfixtures.Deb(t, shimDeb) }
func grubPath(t testing.TB) string { t.Helper(); return testfixtures.Deb(t, grubDeb) }

// realFiles lists Debian's signed EFI binaries and kernel.
func realFiles(t testing.TB) []string {
	t.Helper()
	files := []string{shimPath(t)}
	for _, pattern := range []string{
		filepath.Join(testfixtures.Deb(t, "shim-helpers-amd64-signed/usr/lib/shim"), "*.efi.signed"),
		filepath.Join(testfixtures.Deb(t, "grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed"), "*.efi.signed"),
	} {
		m, err := filepath.Glob(pattern)
		if err != nil || len(m) == 0 {
			t.Fatalf("no file matches %s: scripts/fetch-debs.sh did not extract it", pattern)
		}
		files = append(files, m...)
	}
	return append(files, testfixtures.Kernel(t))
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run scripts/fetch-debs.sh for .cache/debs)", err)
	}
	return b
}

func parseFile(t testing.TB, path string) *authenticode.Image {
	t.Helper()
	im, err := authenticode.Parse(readFile(t, path))
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	return im
}

func readCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(readFile(t, filepath.Join(refDir, "certs", name)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// tool returns the path of a peer tool or fails naming its Debian package.
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (make test installs it)", name, pkg)
	}
	return p
}

// sbSig is one signature as `sbverify --list` prints it.
type sbSig struct {
	Issuers []string    // SignerInfo issuers
	Certs   [][2]string // embedded certificates: subject, issuer
}

func sbverifyList(t testing.TB, path string) []sbSig {
	t.Helper()
	out, err := exec.Command(tool(t, "sbverify", "sbsigntool"), "--list", path).CombinedOutput()
	if err != nil {
		t.Fatalf("sbverify --list %s: %v\n%s", path, err, out)
	}
	var sigs []sbSig
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "signature "):
			sigs = append(sigs, sbSig{})
		case line == "image signature issuers:":
			section = "issuers"
		case line == "image signature certificates:":
			section = "certs"
		case len(sigs) == 0:
			// "No signature table present" and the like
		case section == "issuers" && strings.HasPrefix(line, " - "):
			s := &sigs[len(sigs)-1]
			s.Issuers = append(s.Issuers, strings.TrimPrefix(line, " - "))
		case section == "certs" && strings.HasPrefix(line, " - subject: "):
			s := &sigs[len(sigs)-1]
			s.Certs = append(s.Certs, [2]string{strings.TrimPrefix(line, " - subject: ")})
		case section == "certs" && strings.HasPrefix(line, "   issuer:  "):
			s := &sigs[len(sigs)-1]
			if len(s.Certs) == 0 {
				t.Fatalf("sbverify output: issuer before subject: %q", line)
			}
			s.Certs[len(s.Certs)-1][1] = strings.TrimPrefix(line, "   issuer:  ")
		}
	}
	return sigs
}

var hexRE = regexp.MustCompile(`(?i)^[0-9a-f]+$`)

// pesignHash runs `pesign -h -d ALG -i FILE`, which prints "hash: HEX".
func pesignHash(t testing.TB, path, alg string) string {
	t.Helper()
	out, err := exec.Command(tool(t, "pesign", "pesign"), "-h", "-d", alg, "-i", path).Output()
	if err != nil {
		t.Fatalf("pesign -h -i %s: %v", path, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "hash: "); ok && hexRE.MatchString(h) {
			return strings.ToLower(h)
		}
	}
	t.Fatalf("pesign -h -i %s printed no hash:\n%s", path, out)
	return ""
}

// osslsigncodeVerify runs `osslsigncode verify` and returns the "Calculated
// message digest" (empty when it prints none) and the PE checksum it
// computes.
func osslsigncodeVerify(t testing.TB, path string) (digest, checksum string, out string) {
	t.Helper()
	// It exits non-zero when no chain reaches its CA bundle, which is
	// always the case here; only its output matters.
	b, _ := exec.Command(tool(t, "osslsigncode", "osslsigncode"), "verify", "-in", path).CombinedOutput()
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.ToLower(strings.TrimSpace(v))
		switch k {
		case "Calculated message digest":
			digest = v
		case "PE checksum", "Calculated PE checksum":
			checksum = v
		}
	}
	return digest, checksum, string(b)
}

// oneline formats a DER name as OpenSSL's X509_NAME_oneline, which sbverify
// prints.
func oneline(t testing.TB, der []byte) string {
	t.Helper()
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(der, &rdns); err != nil {
		t.Fatalf("name: %v", err)
	}
	short := map[string]string{
		"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
		"2.5.4.11": "OU", "2.5.4.5": "serialNumber", "1.2.840.113549.1.9.1": "emailAddress",
		"0.9.2342.19200300.100.1.25": "DC", "2.5.4.4": "SN", "2.5.4.42": "GN", "2.5.4.12": "title",
	}
	var sb strings.Builder
	for _, rdn := range rdns {
		for _, atv := range rdn {
			name, ok := short[atv.Type.String()]
			if !ok {
				name = atv.Type.String()
			}
			fmt.Fprintf(&sb, "/%s=%v", name, atv.Value)
		}
	}
	return sb.String()
}

// TestPeers compares every real binary with sbverify, pesign and
// osslsigncode.
//
// Results (all agree; where a peer cannot answer, the comparison is made on a
// derived file or not at all, as noted):
//   - sbverify --list: signer issuers and embedded certificates agree for every
//     file, including both entries of the dual-signed shims. sbverify does not
//     list nested signatures; none of these files has one.
//   - pesign -h (SHA-256 and SHA-1): agrees for every file, including the
//     unsigned, odd-length (950891 bytes) efi_signer shim, where both hash the
//     trailing data up to the end of the file without padding.
//   - osslsigncode verify: its "Calculated message digest" agrees wherever it
//     prints one. It refuses files with two WIN_CERTIFICATE entries
//     ("Corrupted attribute certificate table": it handles a single entry
//     only, while the PE/COFF specification and edk2 allow several), so the
//     dual-signed shims are compared after RemoveSignature (see
//     TestRemoveSignatureReal). It prints no digest for the unsigned shim.
//   - PE checksum (PEChecksum vs osslsigncode's): agrees for every file but the
//     odd-length unsigned shim, where osslsigncode computes 0x000f467e and
//     vouch 0x000f467f, the value stored in the file by its linker.
//     osslsigncode is wrong there: its pe_calc_checksum adds the count of
//     bytes summed in whole 16-bit words instead of the file length that
//     imagehlp's CheckSumMappedFile adds (the odd last byte, here 0x00, is
//     not even summed).
func TestPeers(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers)
	for _, path := range realFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b := readFile(t, path)
			im, err := authenticode.Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := im.CertTableErr(); err != nil {
				t.Errorf("CertTableErr: %v", err)
			}
			for _, alg := range []struct {
				h    crypto.Hash
				name string
			}{{crypto.SHA256, "sha256"}, {crypto.SHA1, "sha1"}} {
				if got, want := hex.EncodeToString(im.Digest(alg.h)), pesignHash(t, path, alg.name); got != want {
					t.Errorf("Digest(%s) = %s, pesign says %s", alg.name, got, want)
				}
			}

			var top []*authenticode.Signature
			for _, s := range im.Signatures() {
				if s.Err != nil || !s.DigestMatches || !s.SignatureValid {
					t.Errorf("signature %d/%d: DigestMatches=%v SignatureValid=%v Err=%v", s.Index, s.Nested, s.DigestMatches, s.SignatureValid, s.Err)
				}
				if s.DigestAlgorithm != crypto.SHA256 || s.DigestAlgorithmName != "sha256" {
					t.Errorf("signature %d: digest algorithm %v %q", s.Index, s.DigestAlgorithm, s.DigestAlgorithmName)
				}
				if s.Nested == 0 {
					top = append(top, s)
				}
			}

			sb := sbverifyList(t, path)
			if len(sb) != len(top) {
				t.Fatalf("%d signatures, sbverify lists %d", len(top), len(sb))
			}
			for i, s := range top {
				got := sbSig{Issuers: []string{oneline(t, s.Signer.RawIssuer)}}
				for _, c := range s.Certificates {
					got.Certs = append(got.Certs, [2]string{oneline(t, c.RawSubject), oneline(t, c.RawIssuer)})
				}
				if fmt.Sprint(got) != fmt.Sprint(sb[i]) {
					t.Errorf("signature %d:\n vouch    %v\n sbverify %v", i+1, got, sb[i])
				}
			}

			digest, checksum, out := osslsigncodeVerify(t, path)
			switch {
			case len(top) == 1:
				if want := hex.EncodeToString(im.Digest(top[0].DigestAlgorithm)); digest != want {
					t.Errorf("osslsigncode calculated digest %q, vouch %s\n%s", digest, want, out)
				}
			case len(top) > 1:
				if !strings.Contains(out, "Corrupted attribute certificate table") {
					t.Errorf("osslsigncode now reads multi-entry tables; compare its digest here too:\n%s", out)
				}
			}
			sum, err := authenticode.PEChecksum(b)
			if err != nil {
				t.Fatal(err)
			}
			want := sum
			if len(b)%2 == 1 && b[len(b)-1] == 0 {
				want-- // osslsigncode's odd-length bug, see above
			}
			if checksum != fmt.Sprintf("%08x", want) {
				t.Errorf("PE checksum %08x, osslsigncode %q", sum, checksum)
			}
		})
	}
}

func TestKnownCAReal(t *testing.T) {
	testfixtures.NeedFixtures(t)
	shim := parseFile(t, shimPath(t)).Signatures()
	if len(shim) != 2 {
		t.Fatalf("shim has %d signatures, want 2", len(shim))
	}
	for i, want := range []struct{ signer, ca string }{
		{"Microsoft Windows UEFI Driver Publisher", "microsoft-uefi-ca-2011"},
		{"Microsoft UEFI CA 2023 signer", "microsoft-uefi-ca-2023"},
	} {
		s := shim[i]
		if s.Signer.Subject.CommonName != want.signer {
			t.Errorf("shim signature %d signer %q, want %q", i, s.Signer.Subject.CommonName, want.signer)
		}
		if got := s.KnownCA(); got != want.ca {
			t.Errorf("shim signature %d KnownCA() = %q, want %q", i, got, want.ca)
		}
	}
	for _, s := range parseFile(t, grubPath(t)).Signatures() {
		if got := s.KnownCA(); got != "" {
			t.Errorf("GRUB KnownCA() = %q, want \"\"", got)
		}
	}
}

func TestVerifiesWithReal(t *testing.T) {
	testfixtures.NeedFixtures(t)
	ca2011 := readCert(t, "db-microsoft-uefi-ca-2011.der")
	ca2023 := readCert(t, "db-microsoft-uefi-ca-2023.der")
	shim := parseFile(t, shimPath(t)).Signatures()
	if len(shim) != 2 {
		t.Fatalf("shim has %d signatures, want 2", len(shim))
	}
	check := func(name string, s *authenticode.Signature, anchor *x509.Certificate, want bool) {
		t.Helper()
		if got := s.VerifiesWith(anchor); got != want {
			t.Errorf("%s VerifiesWith(%s) = %v, want %v", name, anchor.Subject.CommonName, got, want)
		}
	}
	check("shim signature 1", shim[0], ca2011, true)
	check("shim signature 1", shim[0], ca2023, false)
	check("shim signature 2", shim[1], ca2023, true)
	check("shim signature 2", shim[1], ca2011, false)
	for _, s := range parseFile(t, grubPath(t)).Signatures() {
		check("GRUB", s, ca2011, false)
		check("GRUB", s, ca2023, false)
	}
	// Debian's shim with its 2023 signature removed: signed once, by the 2011 CA.
	only2011, err := authenticode.RemoveSignature(readFile(t, shimPath(t)), 1)
	if err != nil {
		t.Fatal(err)
	}
	im, err := authenticode.Parse(only2011)
	if err != nil {
		t.Fatal(err)
	}
	ms := im.Signatures()
	if len(ms) != 1 {
		t.Fatalf("shim without its second signature has %d signatures, want 1", len(ms))
	}
	check("2011-only shim", ms[0], ca2011, true)
	check("2011-only shim", ms[0], ca2023, false)
}

func TestRemoveSignatureReal(t *testing.T) {
	testfixtures.NeedFixtures(t)
	orig := readFile(t, shimPath(t))
	im := parseFile(t, shimPath(t))
	want := im.Digest(crypto.SHA256)
	dir := t.TempDir()
	for _, tc := range []struct {
		remove int
		signer string
		ca     string
	}{
		{1, "Microsoft Windows UEFI Driver Publisher", "microsoft-uefi-ca-2011"},
		{0, "Microsoft UEFI CA 2023 signer", "microsoft-uefi-ca-2023"},
	} {
		out, err := authenticode.RemoveSignature(orig, tc.remove)
		if err != nil {
			t.Fatalf("RemoveSignature(%d): %v", tc.remove, err)
		}
		path := filepath.Join(dir, fmt.Sprintf("shim-without-%d.efi", tc.remove))
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := authenticode.Parse(out)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if err := got.CertTableErr(); err != nil {
			t.Errorf("CertTableErr: %v", err)
		}
		if d := got.Digest(crypto.SHA256); !bytes.Equal(d, want) {
			t.Errorf("digest changed: %x, want %x", d, want)
		}
		sigs := got.Signatures()
		if len(sigs) != 1 {
			t.Fatalf("%d signatures left, want 1", len(sigs))
		}
		s := sigs[0]
		if s.Signer.Subject.CommonName != tc.signer || s.KnownCA() != tc.ca || !s.DigestMatches || !s.SignatureValid {
			t.Errorf("left signature by %q (%s) matches=%v valid=%v", s.Signer.Subject.CommonName, s.KnownCA(), s.DigestMatches, s.SignatureValid)
		}
		sb := sbverifyList(t, path)
		if len(sb) != 1 || len(sb[0].Certs) == 0 || !strings.HasSuffix(sb[0].Certs[0][0], "/CN="+tc.signer) {
			t.Errorf("sbverify --list on the result: %+v", sb)
		}
		// With a single entry osslsigncode reads the table again.
		digest, checksum, outText := osslsigncodeVerify(t, path)
		if digest != hex.EncodeToString(want) {
			t.Errorf("osslsigncode calculated digest %q, want %x\n%s", digest, want, outText)
		}
		// The original checksum was valid, so it is recomputed.
		sum, _ := authenticode.PEChecksum(out)
		if checksum != fmt.Sprintf("%08x", sum) || strings.Contains(outText, "invalid PE checksum") {
			t.Errorf("PE checksum %08x, osslsigncode %q", sum, checksum)
		}
		if got, want := pesignHash(t, path, "sha256"), hex.EncodeToString(want); got != want {
			t.Errorf("pesign hash %s, want %s", got, want)
		}
	}

	// Removing both leaves an unsigned image of the original length up to
	// the table, still with the same digest.
	one, err := authenticode.RemoveSignature(orig, 1)
	if err != nil {
		t.Fatal(err)
	}
	none, err := authenticode.RemoveSignature(one, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := authenticode.Parse(none)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Signatures()) != 0 || !bytes.Equal(got.Digest(crypto.SHA256), want) || len(none)%8 != 0 {
		t.Errorf("unsigned: %d signatures, digest %x, length %d", len(got.Signatures()), got.Digest(crypto.SHA256), len(none))
	}
	if _, err := authenticode.RemoveSignature(none, 0); err == nil {
		t.Error("RemoveSignature on an unsigned image succeeded")
	}
	if _, err := authenticode.RemoveSignature(orig, 2); err == nil {
		t.Error("RemoveSignature(2) on two entries succeeded")
	}
}

// TestKnownCAFingerprints recomputes the constants from the certificates.
func TestKnownCAFingerprints(t *testing.T) {
	files := map[string]string{
		"microsoft-uefi-ca-2011":                "db-microsoft-uefi-ca-2011.der",
		"microsoft-uefi-ca-2023":                "db-microsoft-uefi-ca-2023.der",
		"microsoft-windows-production-pca-2011": "db-microsoft-windows-production-pca-2011.der",
		"windows-uefi-ca-2023":                  "db-windows-uefi-ca-2023.der",
		"microsoft-option-rom-uefi-ca-2023":     "db-microsoft-option-rom-uefi-ca-2023.der",
		"microsoft-kek-ca-2011":                 "kek-microsoft-corporation-kek-ca-2011.der",
		"microsoft-kek-2k-ca-2023":              "kek-microsoft-corporation-kek-2k-ca-2023.der",
	}
	known := authenticode.KnownCAs()
	var ids []string
	for _, k := range known {
		ids = append(ids, k.ID)
		file, ok := files[k.ID]
		if !ok {
			t.Errorf("unexpected known CA %q", k.ID)
			continue
		}
		c := readCert(t, file)
		fp := sha256.Sum256(c.Raw)
		if hex.EncodeToString(fp[:]) != k.SHA256 || c.Subject.CommonName != k.Name {
			t.Errorf("%s: constant %s %q, certificate %x %q", k.ID, k.SHA256, k.Name, fp, c.Subject.CommonName)
		}
		if got, ok := authenticode.IdentifyCA(c); !ok || got != k {
			t.Errorf("IdentifyCA(%s) = %v, %v", file, got, ok)
		}
	}
	sort.Strings(ids)
	if len(ids) != len(files) {
		t.Errorf("KnownCAs() = %v, want the %d of %v", ids, len(files), files)
	}
	if _, ok := authenticode.IdentifyCA(readCert(t, "pk-windows-oem-devices-pk.der")); ok {
		t.Error("the OEM PK identified as a known CA")
	}
}

func BenchmarkShim(b *testing.B) {
	testfixtures.NeedFixtures(b)
	data := readFile(b, shimPath(b))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		im, err := authenticode.Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if im.Digest(crypto.SHA256) == nil {
			b.Fatal("no digest")
		}
		if sigs := im.Signatures(); len(sigs) != 2 || !sigs[1].SignatureValid {
			b.Fatal("signatures")
		}
	}
}
