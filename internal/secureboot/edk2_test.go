package secureboot

import (
	"crypto"
	"crypto/x509"
	"debug/pe"
	"encoding/asn1"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/authenticode/authenticodetest"
	"github.com/vouch-dev/vouch/internal/efi"
)

// fwSpec describes a firmware state for table tests; build turns it into
// variables and reads them back with FromVars.
type fwSpec struct {
	db, dbx, mok, mokx []efi.SignatureList
	sbatLevel          string
	secureBootOff      bool
	setupMode          bool
	ignoreDB           bool
}

func (s fwSpec) build(t testing.TB) *Firmware {
	t.Helper()
	g, isdb := efi.GlobalVariableGUID, efi.ImageSecurityDatabaseGUID
	nvbsrt := efi.NonVolatile | efi.BootServiceAccess | efi.RuntimeAccess
	b := func(v bool) []byte {
		if v {
			return []byte{1}
		}
		return []byte{0}
	}
	vars := []efi.Variable{
		{Name: "SecureBoot", GUID: g, Attributes: efi.BootServiceAccess | efi.RuntimeAccess, Data: b(!s.secureBootOff && !s.setupMode)},
		{Name: "SetupMode", GUID: g, Attributes: efi.BootServiceAccess | efi.RuntimeAccess, Data: b(s.setupMode)},
	}
	add := func(name string, guid efi.GUID, l []efi.SignatureList) {
		if l != nil {
			vars = append(vars, efi.Variable{Name: name, GUID: guid, Attributes: nvbsrt, Data: efi.MarshalSignatureLists(l)})
		}
	}
	add("db", isdb, s.db)
	add("dbx", isdb, s.dbx)
	add("MokListRT", efi.ShimLockGUID, s.mok)
	add("MokListXRT", efi.ShimLockGUID, s.mokx)
	if s.sbatLevel != "" {
		vars = append(vars, efi.Variable{Name: "SbatLevel", GUID: efi.ShimLockGUID, Attributes: efi.NonVolatile | efi.BootServiceAccess, Data: []byte(s.sbatLevel)})
	}
	if s.ignoreDB {
		vars = append(vars, efi.Variable{Name: "MokIgnoreDB", GUID: efi.ShimLockGUID, Attributes: efi.BootServiceAccess | efi.RuntimeAccess, Data: []byte{1}})
	}
	fw, err := FromVars(efi.NewVarSet("test", vars))
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

var testOwner = mustGUID("11111111-2222-3333-4444-555555555555")

func certs(cs ...*x509.Certificate) []efi.SignatureList {
	var out []efi.SignatureList
	for _, c := range cs {
		out = append(out, efi.SignatureList{Type: efi.CertX509GUID, Signatures: []efi.SignatureData{{Owner: testOwner, Data: c.Raw}}})
	}
	return out
}

func hashes(t efi.GUID, ds ...[]byte) []efi.SignatureList {
	l := efi.SignatureList{Type: t}
	for _, d := range ds {
		l.Signatures = append(l.Signatures, efi.SignatureData{Owner: testOwner, Data: d})
	}
	return []efi.SignatureList{l}
}

// tbs is an X509_SHA256 entry for c, revoked from revocation on (zero:
// always).
func tbs(c *x509.Certificate, revocation time.Time) []efi.SignatureList {
	d := authenticode.TBSHash(c, crypto.SHA256)
	var t [16]byte
	if !revocation.IsZero() {
		binary.LittleEndian.PutUint16(t[0:], uint16(revocation.Year()))
		t[2], t[3] = byte(revocation.Month()), byte(revocation.Day())
	}
	return []efi.SignatureList{{Type: efi.CertX509SHA256GUID, Signatures: []efi.SignatureData{{Owner: testOwner, Data: append(d, t[:]...)}}}}
}

func join(ls ...[]efi.SignatureList) []efi.SignatureList {
	var out []efi.SignatureList
	for _, l := range ls {
		out = append(out, l...)
	}
	return out
}

// pki is a small certificate hierarchy: root → intermediate → leaf, and an
// unrelated CA with its own leaf.
type pki struct {
	root, inter, leaf, other, otherLeaf, expiredLeaf *authenticodetest.Cert
}

func newPKI(t testing.TB) *pki {
	ec := authenticodetest.ECDSA()
	p := &pki{}
	p.root = authenticodetest.NewCA(t, "Test Root CA", nil, ec)
	p.inter = authenticodetest.NewCA(t, "Test Intermediate CA", p.root, ec)
	p.leaf = authenticodetest.NewLeaf(t, "Test Signer", p.inter, ec)
	p.other = authenticodetest.NewCA(t, "Other CA", nil, ec)
	p.otherLeaf = authenticodetest.NewLeaf(t, "Other Signer", p.other, ec)
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	p.expiredLeaf = authenticodetest.NewLeaf(t, "Expired Signer", p.inter, ec, authenticodetest.Validity(past, past.AddDate(1, 0, 0)))
	return p
}

func testPE(sections ...authenticodetest.Section) []byte {
	return authenticodetest.NewPE(pe.IMAGE_FILE_MACHINE_AMD64, sections...)
}

func signWith(t testing.TB, img []byte, o authenticodetest.Options) []byte {
	t.Helper()
	if o.Hash == 0 {
		o.Hash = crypto.SHA256
	}
	b, err := authenticodetest.SignWith(img, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func by(c *authenticodetest.Cert, chain ...*authenticodetest.Cert) authenticodetest.Options {
	o := authenticodetest.Options{Signer: c.Cert, Key: c.Key, Hash: crypto.SHA256}
	for _, x := range chain {
		o.Chain = append(o.Chain, x.Cert)
	}
	return o
}

// appendRaw adds a raw WIN_CERT_TYPE_PKCS_SIGNED_DATA entry.
func appendRaw(t testing.TB, img, data []byte) []byte {
	t.Helper()
	b, err := authenticodetest.AppendWinCertificate(img, authenticode.WinCertTypePKCSSignedData, data)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// growCertTable adds n zero bytes to the end of the file and to the
// certificate table, so that the entries no longer fill it.
func growCertTable(t testing.TB, img []byte, n int) []byte {
	t.Helper()
	out := append(append([]byte(nil), img...), make([]byte, n)...)
	peOff := binary.LittleEndian.Uint32(out[0x3c:])
	dir := int(peOff) + 24 + 112 + 4*8
	size := binary.LittleEndian.Uint32(out[dir+4:])
	binary.LittleEndian.PutUint32(out[dir+4:], size+uint32(n))
	return out
}

var oidSHA224 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}

func TestVerifyEdk2(t *testing.T) {
	p := newPKI(t)
	unsigned := testPE()
	unsignedDigest := parseImage(t, unsigned).Digest(crypto.SHA256)
	full := signWith(t, unsigned, by(p.leaf, p.inter, p.root))
	partial := signWith(t, unsigned, by(p.leaf, p.inter)) // root not embedded
	digest := parseImage(t, full).Digest(crypto.SHA256)
	other := signWith(t, unsigned, by(p.otherLeaf, p.other))
	expired := signWith(t, unsigned, by(p.expiredLeaf, p.inter))
	sha384 := signWith(t, unsigned, authenticodetest.Options{Signer: p.leaf.Cert, Key: p.leaf.Key, Chain: []*x509.Certificate{p.inter.Cert}, Hash: crypto.SHA384})
	sha1 := signWith(t, unsigned, authenticodetest.Options{Signer: p.leaf.Cert, Key: p.leaf.Key, Chain: []*x509.Certificate{p.inter.Cert}, Hash: crypto.SHA1})
	sha224 := signWith(t, unsigned, authenticodetest.Options{Signer: p.leaf.Cert, Key: p.leaf.Key, Chain: []*x509.Certificate{p.inter.Cert}, DigestOID: oidSHA224})
	// A signature by the other CA, then one that db allows.
	otherThenGood := signWith(t, other, by(p.leaf, p.inter))
	// A good signature, then one whose signer's TBS hash is in dbx.
	goodThenRevoked := signWith(t, full, by(p.otherLeaf, p.other))
	// A PKCS#7 cut short keeps the header edk2 reads its algorithm from
	// but carries no certificate.
	goodP7, err := authenticodetest.PKCS7(unsigned, by(p.leaf, p.inter))
	if err != nil {
		t.Fatal(err)
	}
	malformed := appendRaw(t, unsigned, goodP7[:80])
	malformedThenGood := signWith(t, malformed, by(p.leaf, p.inter))
	goodThenMalformed := appendRaw(t, full, goodP7[:80])
	// A valid signature only as a nested one: firmware ignores nesting.
	nestedP7, err := authenticodetest.PKCS7(unsigned, by(p.leaf, p.inter))
	if err != nil {
		t.Fatal(err)
	}
	nestedOnly := signWith(t, unsigned, authenticodetest.Options{Signer: p.otherLeaf.Cert, Key: p.otherLeaf.Key, Chain: []*x509.Certificate{p.other.Cert}, Nested: [][]byte{nestedP7}})
	badTable := growCertTable(t, full, 8)
	noSigner := signWith(t, unsigned, authenticodetest.Options{Signer: p.leaf.Cert, Key: p.leaf.Key, Chain: []*x509.Certificate{p.inter.Cert}, Hash: crypto.SHA256, OmitSigner: true})

	cases := []struct {
		name    string
		img     []byte
		fw      fwSpec
		allowed bool
		by      string // substring of AuthorizedBy or DeniedBy
		sig     int
	}{
		{"root in db", full, fwSpec{db: certs(p.root.Cert)}, true, "Test Root CA", 1},
		{"intermediate in db", full, fwSpec{db: certs(p.inter.Cert)}, true, "Test Intermediate CA", 1},
		{"signer itself in db", full, fwSpec{db: certs(p.leaf.Cert)}, true, "Test Signer", 1},
		{"partial chain: root not embedded", partial, fwSpec{db: certs(p.root.Cert)}, true, "Test Root CA", 1},
		{"unrelated db", full, fwSpec{db: certs(p.other.Cert)}, false, "", 0},
		{"no db at all", full, fwSpec{}, false, "", 0},
		{"expired signer: no time check", expired, fwSpec{db: certs(p.root.Cert)}, true, "Test Root CA", 1},
		{"first db entry that verifies decides", full, fwSpec{db: certs(p.other.Cert, p.inter.Cert, p.root.Cert)}, true, "Test Intermediate CA", 1},
		{"dbx X509 intermediate", full, fwSpec{db: certs(p.root.Cert), dbx: certs(p.inter.Cert)}, false, "dbx: Test Intermediate CA", 1},
		{"dbx X509_SHA256 signer, time zero", full, fwSpec{db: certs(p.root.Cert), dbx: tbs(p.leaf.Cert, time.Time{})}, false, "TBS hash of Test Signer", 1},
		{"dbx X509_SHA256 signer, with time", full, fwSpec{db: certs(p.root.Cert), dbx: tbs(p.leaf.Cert, time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC))}, false, "TBS hash of Test Signer", 1},
		{"dbx X509_SHA256 of the db cert, not embedded", partial, fwSpec{db: certs(p.root.Cert), dbx: tbs(p.root.Cert, time.Time{})}, false, "", 0},
		// Pkcs7GetSigners is the signer only: an embedded intermediate's or
		// root's TBS hash forbids nothing; as the db match it makes that
		// signature not allowed, and a later signature may still allow.
		{"dbx X509_SHA256 of an embedded intermediate, root in db", full, fwSpec{db: certs(p.root.Cert), dbx: tbs(p.inter.Cert, time.Time{})}, true, "Test Root CA", 1},
		{"dbx X509_SHA256 of the embedded root, intermediate in db", full, fwSpec{db: certs(p.inter.Cert), dbx: tbs(p.root.Cert, time.Time{})}, true, "Test Intermediate CA", 1},
		{"dbx X509_SHA256 of the db intermediate", full, fwSpec{db: certs(p.inter.Cert), dbx: tbs(p.inter.Cert, time.Time{})}, false, "", 0},
		{"dbx X509_SHA256 of the first db match: later db entries are not tried", full, fwSpec{db: certs(p.inter.Cert, p.root.Cert), dbx: tbs(p.inter.Cert, time.Time{})}, false, "", 0},
		{"dbx X509_SHA256 of the db match of one signature, another allowed", otherThenGood, fwSpec{db: certs(p.other.Cert, p.inter.Cert), dbx: tbs(p.other.Cert, time.Time{})}, true, "Test Intermediate CA", 2},
		{"signer not embedded with dbx: revoked", noSigner, fwSpec{db: certs(p.root.Cert), dbx: hashes(efi.CertSHA256GUID, make([]byte, 32))}, false, "unreadable signature", 1},
		{"dbx X509_SHA256 of an unrelated cert", full, fwSpec{db: certs(p.root.Cert), dbx: tbs(p.other.Cert, time.Time{})}, true, "Test Root CA", 1},
		{"X509_SHA256 in db does not allow", full, fwSpec{db: tbs(p.leaf.Cert, time.Time{})}, false, "", 0},
		{"image hash in dbx beats db", full, fwSpec{db: certs(p.root.Cert), dbx: hashes(efi.CertSHA256GUID, digest)}, false, "dbx: SHA-256 hash", 0},
		{"image hash in db allows a signed image", other, fwSpec{db: join(certs(p.root.Cert), hashes(efi.CertSHA256GUID, digest))}, true, "db: SHA-256 hash", 0},
		{"unsigned, hash in db", unsigned, fwSpec{db: hashes(efi.CertSHA256GUID, unsignedDigest)}, true, "db: SHA-256 hash", 0},
		{"unsigned, hash in db and dbx", unsigned, fwSpec{db: hashes(efi.CertSHA256GUID, unsignedDigest), dbx: hashes(efi.CertSHA256GUID, unsignedDigest)}, false, "dbx: SHA-256 hash", 0},
		{"unsigned, not in db", unsigned, fwSpec{db: certs(p.root.Cert)}, false, "", 0},
		{"unsigned, SHA-1 hash in db does not count", unsigned, fwSpec{db: hashes(efi.CertSHA1GUID, parseImage(t, unsigned).Digest(crypto.SHA1))}, false, "", 0},
		{"SHA-384 signature", sha384, fwSpec{db: certs(p.root.Cert)}, true, "Test Root CA", 1},
		{"SHA-1 signature (Debian 12 OVMF accepts it)", sha1, fwSpec{db: certs(p.root.Cert)}, true, "Test Root CA", 1},
		{"unsupported digest: entry skipped", sha224, fwSpec{db: certs(p.root.Cert)}, false, "", 0},
		{"unsupported digest: hash in db is not looked at", sha224, fwSpec{db: hashes(efi.CertSHA256GUID, digest)}, false, "", 0},
		{"second signature allowed", otherThenGood, fwSpec{db: certs(p.root.Cert)}, true, "Test Root CA", 2},
		{"dbx hit on the second of two signatures", goodThenRevoked, fwSpec{db: certs(p.root.Cert), dbx: tbs(p.otherLeaf.Cert, time.Time{})}, false, "TBS hash of Other Signer", 2},
		{"malformed PKCS#7, no dbx", malformed, fwSpec{db: certs(p.root.Cert)}, false, "", 0},
		{"malformed PKCS#7 with dbx: revoked", malformed, fwSpec{db: certs(p.root.Cert), dbx: hashes(efi.CertSHA256GUID, make([]byte, 32))}, false, "unreadable signature", 1},
		{"malformed then good, no dbx", malformedThenGood, fwSpec{db: certs(p.root.Cert)}, true, "Test Root CA", 2},
		{"good then malformed with dbx", goodThenMalformed, fwSpec{db: certs(p.root.Cert), dbx: hashes(efi.CertSHA256GUID, make([]byte, 32))}, false, "unreadable signature", 2},
		{"nested signature ignored", nestedOnly, fwSpec{db: certs(p.root.Cert)}, false, "", 0},
		{"certificate table not filled", badTable, fwSpec{db: certs(p.root.Cert)}, false, "certificate table", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fw := c.fw.build(t)
			d := fw.Verify(parseImage(t, c.img))
			if d.Allowed != c.allowed || !d.Enforced {
				t.Fatalf("allowed=%v enforced=%v, want allowed=%v: %+v", d.Allowed, d.Enforced, c.allowed, d)
			}
			got := d.AuthorizedBy + d.DeniedBy
			if !strings.Contains(got, c.by) {
				t.Errorf("decided by %q, want it to contain %q (%s)", got, c.by, d.Explanation)
			}
			if d.Signature != c.sig {
				t.Errorf("signature %d, want %d: %s", d.Signature, c.sig, d.Explanation)
			}
			if d.Reason == "" || d.Explanation == "" {
				t.Errorf("decision lacks a reason or explanation: %+v", d)
			}
		})
	}
}

func TestVerifyNotEnforced(t *testing.T) {
	p := newPKI(t)
	img := parseImage(t, signWith(t, testPE(), by(p.otherLeaf, p.other)))
	for _, spec := range []fwSpec{{secureBootOff: true, db: certs(p.root.Cert)}, {setupMode: true}} {
		fw := spec.build(t)
		d := fw.Verify(img)
		if !d.Allowed || d.Enforced {
			t.Errorf("%+v: got %+v, want allowed and not enforced", spec, d)
		}
		if !strings.Contains(d.Explanation, "would refuse") {
			t.Errorf("explanation %q does not say what enforcement would do", d.Explanation)
		}
		if pol := fw.VerifyPolicy(img); pol.Allowed {
			t.Errorf("policy allowed an image signed by an unknown CA: %+v", pol)
		}
	}
}

// TestVerifyRealShim runs the decision on Debian's dual-signed shim and its
// one-signature variants under the what-if profiles and real stores.
func TestVerifyRealShim(t *testing.T) {
	sh := debianShims(t)
	digest := shimDigest(t, sh.dual)
	shimsByName := map[string][]byte{"2011-only": sh.only2011, "2023-only": sh.only2023, "dual": sh.dual}
	want := map[string]map[string]string{ // "" = denied, else the CA that allows it
		ProfileMicrosoft2011: {"2011-only": CAUEFI2011, "2023-only": "", "dual": CAUEFI2011},
		ProfileMicrosoft2023: {"2011-only": "", "2023-only": CAUEFI2023, "dual": CAUEFI2023},
		ProfileMicrosoftBoth: {"2011-only": CAUEFI2011, "2023-only": CAUEFI2023, "dual": CAUEFI2011},
		store2011:            {"2011-only": CAUEFI2011, "2023-only": "", "dual": CAUEFI2011},
		store2023:            {"2011-only": "", "2023-only": CAUEFI2023, "dual": CAUEFI2023},
		storeBoth:            {"2011-only": CAUEFI2011, "2023-only": CAUEFI2023, "dual": CAUEFI2011},
		storeBothDbx:         {"2011-only": "", "2023-only": "", "dual": ""},
	}
	for fwName, row := range want {
		var fw *Firmware
		if strings.HasPrefix(fwName, "microsoft-") {
			var err error
			if fw, err = FromProfile(fwName); err != nil {
				t.Fatal(err)
			}
		} else {
			fw = firmwareFromStore(t, deriveStore(t, fwName, digest))
		}
		for shimName, ca := range row {
			d := fw.Verify(parseImage(t, shimsByName[shimName]))
			if d.Allowed != (ca != "") || (ca != "" && !strings.Contains(d.AuthorizedBy, ca)) {
				t.Errorf("%s, %s shim: %+v, want allowed by %q", fwName, shimName, d, ca)
			}
		}
	}
}

// TestDBCert: a profile plus a user-supplied certificate.
func TestDBCert(t *testing.T) {
	sh := debianShims(t)
	fw, err := FromProfile(ProfileMicrosoft2011)
	if err != nil {
		t.Fatal(err)
	}
	img := parseImage(t, sh.only2023)
	if fw.Verify(img).Allowed {
		t.Fatal("2023-only shim allowed by the 2011 profile")
	}
	fw.AddDBCert(readCert(t, "db-microsoft-uefi-ca-2023.der"), "--db-cert test")
	d := fw.Verify(img)
	if !d.Allowed || !strings.Contains(d.AuthorizedBy, "--db-cert test") {
		t.Fatalf("%+v", d)
	}
	if !fw.TrustsCA(CAUEFI2023) {
		t.Error("TrustsCA(2023) false after AddDBCert")
	}
	if _, err := FromProfile("microsoft-2099"); err == nil {
		t.Error("unknown profile accepted")
	}
}
