package nvram

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/mscerts"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Real artefacts: Debian's OVMF store that trusts only the Microsoft 2011
// CAs (apt package ovmf) and the reference data in testdata/secureboot.
const msVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"

var (
	certDir   = testfixtures.Data("secureboot", "certs")
	dbxUpdate = testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin")
)

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (OVMF stores come from the apt package ovmf; the rest is the repository's testdata/secureboot)", err)
	}
	return b
}

func msStore(t testing.TB) *Store {
	t.Helper()
	s, err := Parse(readFile(t, msVars), msVars)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	c, err := mscerts.Read(filepath.Join(certDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// copyStore puts a copy of a store image in a fresh folder.
func copyStore(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vm_VARS.fd")
	if err := os.WriteFile(p, b, 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func sum(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func firmware(t testing.TB, b []byte) *secureboot.Firmware {
	t.Helper()
	s, err := Parse(b, "edited")
	if err != nil {
		t.Fatal(err)
	}
	fw, err := secureboot.FromVars(s.Vars())
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

func selfSigned(t testing.TB, cn string, ec bool) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Unix(1700000000, 0), NotAfter: time.Unix(1900000000, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	var der []byte
	var err error
	if ec {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	} else {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		der, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testfixtures.Golden(t, name, got, *update)
}

func TestListGolden(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	enc := func(v any) []byte {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return append(b, '\n')
	}
	s := msStore(t)
	vars := s.List()
	golden(t, "list-ovmf-vars-4m-ms.json", enc(vars))
	byName := map[string]Variable{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	if got := byName["db"].KnownCAs; strings.Join(got, ",") != "microsoft-windows-production-pca-2011,microsoft-uefi-ca-2011" {
		t.Errorf("db known CAs %v", got)
	}
	if byName["KEK"].Timestamp == "" || byName["KEK"].Attributes != "NV|BS|RT|AT" {
		t.Errorf("KEK %+v", byName["KEK"])
	}
	var table bytes.Buffer
	if err := WriteTable(&table, vars); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "Microsoft Corporation UEFI CA 2011 [microsoft-uefi-ca-2011]") {
		t.Errorf("table lacks the db CA:\n%s", table.String())
	}
}

// TestListGoldenEfivars: the efivarfs samples get the same description as a
// store, without timestamps (efivarfs does not show them).
func TestListGoldenEfivars(t *testing.T) {
	enc := func(v any) []byte {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return append(b, '\n')
	}
	for _, d := range []string{"efivars-shim-test-data-0", "efivars-shim-test-data-1"} {
		dir := testfixtures.Data("secureboot", d)
		vs, err := efi.ReadVarDir(os.DirFS(dir), d)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "list-"+d+".json", enc(Describe(vs, nil)))
	}
}

func TestExportRoundTrip(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	s := msStore(t)
	if _, err := s.AddCerts(VarDB, []*x509.Certificate{cert(t, "db-microsoft-uefi-ca-2023.der")}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "efivars")
	names, err := Export(s.Vars(), dir)
	if err != nil {
		t.Fatal(err)
	}
	back, err := efi.ReadVarDir(os.DirFS(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := s.Vars().All()
	got := back.All()
	if len(names) != len(want) || len(got) != len(want) {
		t.Fatalf("exported %d files, read back %d variables, store has %d", len(names), len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].GUID != want[i].GUID || got[i].Attributes != want[i].Attributes || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Errorf("variable %d: got %s-%s %s, want %s-%s %s", i, got[i].Name, got[i].GUID, got[i].Attributes, want[i].Name, want[i].GUID, want[i].Attributes)
		}
	}
	// The engine reads the export as it reads the store.
	fw, err := secureboot.FromVars(back)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(fw.DBCAs, ","), "microsoft-uefi-ca-2023") {
		t.Errorf("exported db CAs %v", fw.DBCAs)
	}
}

func TestAddCerts(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	s := msStore(t)
	ca2023 := cert(t, "db-microsoft-uefi-ca-2023.der")
	own := selfSigned(t, "My Fleet DB", false)
	free := s.Free()
	c, err := s.AddCerts(VarDB, []*x509.Certificate{ca2023, own})
	if err != nil {
		t.Fatal(err)
	}
	if c.Added != 2 || c.Present != 0 || c.Entries != 4 || c.FreeBefore != free || c.FreeAfter >= free {
		t.Errorf("change %+v", c)
	}
	lists, err := s.Vars().SignatureLists("db", efi.ImageSecurityDatabaseGUID)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]efi.GUID{}
	for _, l := range lists {
		for _, e := range l.Signatures {
			c, err := x509.ParseCertificate(e.Data)
			if err != nil {
				t.Fatal(err)
			}
			owners[c.Subject.CommonName] = e.Owner
		}
	}
	if owners["Microsoft UEFI CA 2023"] != MicrosoftOwner || owners["My Fleet DB"] != VouchOwner {
		t.Errorf("owners %v", owners)
	}
	fw := firmware(t, s.Bytes())
	if strings.Join(fw.DBCAs, ",") != "microsoft-windows-production-pca-2011,microsoft-uefi-ca-2011,microsoft-uefi-ca-2023" {
		t.Errorf("engine reads db CAs %v", fw.DBCAs)
	}
	// Appending again changes nothing: firmware skips entries already there.
	img := s.Bytes()
	c, err = s.AddCerts(VarDB, []*x509.Certificate{ca2023})
	if err != nil {
		t.Fatal(err)
	}
	if c.Added != 0 || c.Present != 1 || !bytes.Equal(img, s.Bytes()) {
		t.Errorf("second add: %+v, image changed %v", c, !bytes.Equal(img, s.Bytes()))
	}
	c, err = s.AddCerts(VarKEK, []*x509.Certificate{cert(t, "kek-microsoft-corporation-kek-2k-ca-2023.der")})
	if err != nil || c.Added != 1 {
		t.Fatalf("kek add: %+v %v", c, err)
	}
	if fw := firmware(t, s.Bytes()); strings.Join(fw.KEKCAs, ",") != "microsoft-kek-ca-2011,microsoft-kek-2k-ca-2023" {
		t.Errorf("KEK CAs %v", fw.KEKCAs)
	}
	if _, err := s.AddCerts(VarDBX, []*x509.Certificate{own}); err == nil {
		t.Error("certificates into dbx accepted")
	}
}

func TestAddHashes(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	s := msStore(t)
	h1 := sha256.Sum256([]byte("one"))
	h2 := sha256.Sum256([]byte("two"))
	before, _ := s.Vars().SignatureLists("dbx", efi.ImageSecurityDatabaseGUID)
	c, err := s.AddHashes([][]byte{h1[:], h2[:]})
	if err != nil {
		t.Fatal(err)
	}
	if c.Added != 2 || c.Entries != countLists(before)+2 {
		t.Errorf("change %+v", c)
	}
	fw := firmware(t, s.Bytes())
	found := 0
	for _, l := range fw.DBX {
		for _, e := range l.Signatures {
			if l.Type == efi.CertSHA256GUID && (bytes.Equal(e.Data, h1[:]) || bytes.Equal(e.Data, h2[:])) && e.Owner == VouchOwner {
				found++
			}
		}
	}
	if found != 2 {
		t.Errorf("engine finds %d of the 2 hashes in dbx", found)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), strings.Repeat("a", 63), strings.Repeat("a", 66)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
	if h, err := ParseHash("SHA256:" + strings.ToUpper(hex.EncodeToString(h1[:]))); err != nil || !bytes.Equal(h, h1[:]) {
		t.Errorf("ParseHash with prefix: %x %v", h, err)
	}
}

func countLists(ls []efi.SignatureList) int {
	n := 0
	for _, l := range ls {
		n += len(l.Signatures)
	}
	return n
}

// TestApplyDBXUpdate applies Microsoft's signed DBXUpdate.bin to the 2011
// store: the new entries are the update's entries not already in dbx (owner
// and hash, as edk2's FilterSignatureList compares), a second apply adds
// nothing, and the signature verifies with the store's Microsoft KEK CA 2011.
func TestApplyDBXUpdate(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	s := msStore(t)
	raw := readFile(t, dbxUpdate)
	u, err := ParseUpdate(raw, "DBXUpdate-amd64.bin")
	if err != nil {
		t.Fatal(err)
	}
	// Expected count, computed independently of the store code.
	before, err := s.Vars().SignatureLists("dbx", efi.ImageSecurityDatabaseGUID)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, l := range before {
		for _, e := range l.Signatures {
			have[l.Type.String()+string(e.Owner[:])+string(e.Data)] = true
		}
	}
	unique := map[string]bool{}
	for _, l := range u.Lists {
		for _, e := range l.Signatures {
			k := l.Type.String() + string(e.Owner[:]) + string(e.Data)
			if !have[k] {
				unique[k] = true
			}
		}
	}
	if u.Entries() != len(unique)+countPresent(u, have) {
		t.Fatalf("the update repeats entries (%d entries, %d unique new); edk2 would keep repeats", u.Entries(), len(unique))
	}
	c, err := s.Apply(raw, "DBXUpdate-amd64.bin", VarDBX)
	if err != nil {
		t.Fatal(err)
	}
	if c.Added != len(unique) || c.Entries != countLists(before)+len(unique) {
		t.Errorf("added %d entries (%d now), want %d new", c.Added, c.Entries, len(unique))
	}
	t.Logf("%s", c.Summary)
	v := c.Verification
	if v == nil || !v.Verified || !strings.Contains(v.By, "KEK: Microsoft Corporation KEK CA 2011") || v.SignedAttributes != "NV|BS|RT|AT|AP" {
		t.Errorf("verification %+v", v)
	}
	// The dbx timestamp stays the later one (the store's, 2025; the update
	// is stamped 2010 as Microsoft stamps them).
	if a, _ := s.VarStore().AuthInfo("dbx", efi.ImageSecurityDatabaseGUID); a.Time().Year() != 2025 {
		t.Errorf("dbx timestamp %v", a.Time())
	}
	img := s.Bytes()
	c, err = s.Apply(raw, "DBXUpdate-amd64.bin", VarDBX)
	if err != nil {
		t.Fatal(err)
	}
	if c.Added != 0 || c.Present != u.Entries() || !bytes.Equal(img, s.Bytes()) {
		t.Errorf("second apply: %+v; image changed %v", c, !bytes.Equal(img, s.Bytes()))
	}
	// The engine sees the revocations.
	fw := firmware(t, s.Bytes())
	if countLists(fw.DBX) != c.Entries {
		t.Errorf("engine reads %d dbx entries, store says %d", countLists(fw.DBX), c.Entries)
	}

	// Applied to db, the same update's signature does not cover db's name:
	// reported, not refused.
	s2 := msStore(t)
	c, err = s2.Apply(raw, "DBXUpdate-amd64.bin", VarDB)
	if err != nil {
		t.Fatal(err)
	}
	if c.Verification.Verified || !strings.Contains(c.Verification.Reason, "does not cover db") {
		t.Errorf("db apply verification %+v", c.Verification)
	}
	// A store whose KEK lacks Microsoft's CA: the signer chains to nothing.
	s3 := msStore(t)
	if err := s3.VarStore().Set(efi.Variable{Name: "KEK", GUID: efi.GlobalVariableGUID, Attributes: dbAttrs, Data: x509Lists([]*x509.Certificate{selfSigned(t, "Other KEK", false)})}); err != nil {
		t.Fatal(err)
	}
	c, err = s3.Apply(raw, "DBXUpdate-amd64.bin", VarDBX)
	if err != nil {
		t.Fatal(err)
	}
	if c.Verification.Verified || !strings.Contains(c.Verification.Reason, "chains to no certificate") || c.Added != len(unique) {
		t.Errorf("foreign KEK: %+v %+v", c, c.Verification)
	}
}

func countPresent(u *Update, have map[string]bool) int {
	n := 0
	for _, l := range u.Lists {
		for _, e := range l.Signatures {
			if have[l.Type.String()+string(e.Owner[:])+string(e.Data)] {
				n++
			}
		}
	}
	return n
}

func TestParseUpdateBad(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	raw := readFile(t, dbxUpdate)
	certLen := int(raw[16]) | int(raw[17])<<8 | int(raw[18])<<16 | int(raw[19])<<24
	payload := 16 + certLen
	withPayload := func(p []byte) []byte { return append(append([]byte{}, raw[:payload]...), p...) }
	ecCert := selfSigned(t, "EC", true)
	ecList := efi.MarshalSignatureLists([]efi.SignatureList{{Type: efi.CertX509GUID, Signatures: []efi.SignatureData{{Owner: VouchOwner, Data: ecCert.Raw}}}})
	unknown := efi.MarshalSignatureLists([]efi.SignatureList{{Type: VouchOwner, Signatures: []efi.SignatureData{{Owner: VouchOwner, Data: []byte{1, 2, 3}}}}})
	notCert := efi.MarshalSignatureLists([]efi.SignatureList{{Type: efi.CertX509GUID, Signatures: []efi.SignatureData{{Owner: VouchOwner, Data: []byte("not a certificate")}}}})
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not a signed variable update"},
		{"truncated header", raw[:30], "not a signed variable update"},
		{"truncated certificate", raw[:payload-10], "not a signed variable update"},
		{"no payload", raw[:payload], "carries no signature lists"},
		{"truncated list", raw[:len(raw)-5], "malformed signature lists"},
		{"list size past end", withPayload([]byte{0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40, 0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 48, 0, 0, 0}), "malformed signature lists"},
		{"unknown type", withPayload(unknown), "does not define"},
		{"X509 not a certificate", withPayload(notCert), "not a certificate"},
		{"X509 with EC key", withPayload(ecList), "needs RSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseUpdate(tc.b, "upd.bin")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "upd.bin") {
				t.Errorf("got %v, want an error naming upd.bin with %q", err, tc.want)
			}
			s := msStore(t)
			img := s.Bytes()
			if _, err := s.Apply(tc.b, "upd.bin", VarDBX); err == nil {
				t.Error("Apply accepted it")
			}
			if !bytes.Equal(img, s.Bytes()) {
				t.Error("a refused update changed the store image")
			}
		})
	}
}

func TestSetProfile(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	cd, err := LoadCertDir(certDir)
	if err != nil {
		t.Fatal(err)
	}
	orig := msStore(t)
	for _, tc := range []struct {
		profile string
		db, kek []string
	}{
		{secureboot.ProfileMicrosoft2023, []string{"windows-uefi-ca-2023", "microsoft-uefi-ca-2023", "microsoft-option-rom-uefi-ca-2023"}, []string{"microsoft-kek-2k-ca-2023"}},
		{secureboot.ProfileMicrosoftBoth, []string{"microsoft-windows-production-pca-2011", "microsoft-uefi-ca-2011", "windows-uefi-ca-2023", "microsoft-uefi-ca-2023", "microsoft-option-rom-uefi-ca-2023"}, []string{"microsoft-kek-ca-2011", "microsoft-kek-2k-ca-2023"}},
		{secureboot.ProfileMicrosoft2011, []string{"microsoft-windows-production-pca-2011", "microsoft-uefi-ca-2011"}, []string{"microsoft-kek-ca-2011"}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			b, err := ProfileStore(orig.Bytes(), tc.profile, certDir)
			if err != nil {
				t.Fatal(err)
			}
			fw := firmware(t, b)
			if strings.Join(fw.DBCAs, ",") != strings.Join(tc.db, ",") || strings.Join(fw.KEKCAs, ",") != strings.Join(tc.kek, ",") {
				t.Errorf("db %v kek %v", fw.DBCAs, fw.KEKCAs)
			}
			if !fw.SecureBoot || fw.SetupMode {
				t.Errorf("secure boot %v setup mode %v", fw.SecureBoot, fw.SetupMode)
			}
			// Everything but db and KEK is kept byte for byte.
			s, _ := Parse(b, "p")
			got := s.Vars()
			for _, v := range orig.Vars().All() {
				if v.Name == "db" || v.Name == "KEK" {
					continue
				}
				g, ok := got.Get(v.Name, v.GUID)
				if !ok || !bytes.Equal(g.Data, v.Data) || g.Attributes != v.Attributes {
					t.Errorf("%s changed", v.Name)
				}
			}
			if len(got.All()) != len(orig.Vars().All()) {
				t.Errorf("%d variables, want %d", len(got.All()), len(orig.Vars().All()))
			}
			// Same profile again: nothing to change.
			s2, _ := Parse(b, "p")
			if _, err := s2.SetProfile(tc.profile, cd); err != nil || s2.Changed() {
				t.Errorf("second set-profile changed the store (%v)", err)
			}
		})
	}
	// The built-in certificates (no folder) give the same stores.
	for _, p := range secureboot.Profiles() {
		a, err := ProfileStore(orig.Bytes(), p, certDir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ProfileStore(orig.Bytes(), p, "")
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: built-in certificates give a different store (%v)", p, err)
		}
	}
	// A folder without the CAs: the first missing one is named.
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "readme.txt"), []byte("no certificates"), 0o644)
	_, err = ProfileStore(orig.Bytes(), secureboot.ProfileMicrosoft2023, empty)
	if err == nil || !strings.Contains(err.Error(), "Windows UEFI CA 2023") || !strings.Contains(err.Error(), empty) {
		t.Errorf("missing CA: %v", err)
	}
	if _, err := ProfileStore(orig.Bytes(), "microsoft-1999", certDir); err == nil {
		t.Error("unknown profile accepted")
	}
	// PEM files in nested folders, as secureboot_objects lays them out.
	nested := filepath.Join(t.TempDir(), "PreSignedObjects")
	for _, name := range []string{"db-microsoft-uefi-ca-2023.der", "db-windows-uefi-ca-2023.der", "db-microsoft-option-rom-uefi-ca-2023.der", "kek-microsoft-corporation-kek-2k-ca-2023.der"} {
		sub := filepath.Join(nested, strings.ToUpper(strings.SplitN(name, "-", 2)[0]), "Certificates")
		os.MkdirAll(sub, 0o755)
		p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert(t, name).Raw})
		if err := os.WriteFile(filepath.Join(sub, strings.TrimSuffix(name, ".der")+".pem"), p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ProfileStore(orig.Bytes(), secureboot.ProfileMicrosoft2023, nested); err != nil {
		t.Errorf("nested PEM folder: %v", err)
	}
}

// fullStore returns the 2011 store with a filler variable that leaves fewer
// than 64 bytes free, even after compaction.
func fullStore(t testing.TB) []byte {
	t.Helper()
	s := msStore(t)
	if err := s.VarStore().Compact(); err != nil {
		t.Fatal(err)
	}
	name := "VouchFiller"
	n := s.Free() - 60 - 2*(len(name)+1) - 40
	if err := s.VarStore().Set(efi.Variable{Name: name, GUID: VouchOwner, Attributes: efi.NonVolatile | efi.BootServiceAccess, Data: bytes.Repeat([]byte{0xa5}, n)}); err != nil {
		t.Fatal(err)
	}
	if s.Free() >= 64 {
		t.Fatalf("filler leaves %d bytes", s.Free())
	}
	return s.Bytes()
}

func TestOverflow(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	s, err := Parse(fullStore(t), "full")
	if err != nil {
		t.Fatal(err)
	}
	img := s.Bytes()
	_, err = s.AddCerts(VarDB, []*x509.Certificate{cert(t, "db-microsoft-uefi-ca-2023.der")})
	if !errors.Is(err, efi.ErrStoreFull) || !strings.Contains(err.Error(), "bytes free") || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("got %v, want a store-full error with the sizes", err)
	}
	if !bytes.Equal(img, s.Bytes()) {
		t.Error("a refused edit changed the image")
	}
	// Too many hashes for even an empty store.
	s = msStore(t)
	img = s.Bytes()
	var hs [][]byte
	for i := 0; i < s.Size()/48+10; i++ {
		h := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		hs = append(hs, h[:])
	}
	if _, err := s.AddHashes(hs); !errors.Is(err, efi.ErrStoreFull) {
		t.Errorf("got %v, want ErrStoreFull", err)
	}
	if !bytes.Equal(img, s.Bytes()) {
		t.Error("a refused edit changed the image")
	}
}

func TestSaveBackupAndAtomicity(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	orig := readFile(t, msVars)
	p := copyStore(t, orig)
	s, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddCerts(VarDB, []*x509.Certificate{cert(t, "db-microsoft-uefi-ca-2023.der")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if b := readFile(t, p+BackupSuffix); !bytes.Equal(b, orig) {
		t.Error("backup is not the original")
	}
	if b := readFile(t, p); !bytes.Equal(b, s.Bytes()) || len(b) != len(orig) {
		t.Error("file is not the edited image")
	}
	if info, _ := os.Stat(p); info.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("folder holds %v, want the store and its backup only", names)
	}

	// --backup PATH and --no-backup.
	p2 := copyStore(t, orig)
	s2, _ := Open(p2)
	s2.AddHashes([][]byte{bytes.Repeat([]byte{1}, 32)})
	bk := filepath.Join(t.TempDir(), "elsewhere.fd")
	if err := s2.Save(SaveOptions{Backup: bk}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, bk), orig) {
		t.Error("--backup copy differs")
	}
	if _, err := os.Stat(p2 + BackupSuffix); err == nil {
		t.Error("default backup written too")
	}
	p3 := copyStore(t, orig)
	s3, _ := Open(p3)
	s3.AddHashes([][]byte{bytes.Repeat([]byte{2}, 32)})
	if err := s3.Save(SaveOptions{NoBackup: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p3 + BackupSuffix); err == nil {
		t.Error("backup written with NoBackup")
	}

	// Failures leave the original byte-identical and no stray files.
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, p string) SaveOptions
		want  string
	}{
		{"changed underneath", func(t *testing.T, p string) SaveOptions {
			b := readFile(t, p)
			b[len(b)-1] ^= 0xff
			os.WriteFile(p, b, 0o640)
			return SaveOptions{}
		}, "changed since it was read"},
		{"backup folder missing", func(t *testing.T, p string) SaveOptions {
			return SaveOptions{Backup: filepath.Join(t.TempDir(), "missing", "bak.fd")}
		}, "backup"},
		{"read-only", func(t *testing.T, p string) SaveOptions {
			os.Chmod(p, 0o444)
			return SaveOptions{}
		}, "read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := copyStore(t, orig)
			s, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddCerts(VarDB, []*x509.Certificate{cert(t, "db-microsoft-uefi-ca-2023.der")}); err != nil {
				t.Fatal(err)
			}
			opts := tc.setup(t, p)
			before := sum(t, p)
			err = s.Save(opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
			if sum(t, p) != before {
				t.Error("the store changed")
			}
			entries, _ := os.ReadDir(filepath.Dir(p))
			for _, e := range entries {
				if strings.Contains(e.Name(), ".vouch-") && !strings.HasSuffix(e.Name(), BackupSuffix) {
					t.Errorf("stray temporary file %s", e.Name())
				}
			}
		})
	}
}

func TestCheckWritable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "v.fd")
	os.WriteFile(p, []byte("x"), 0o600)
	if err := CheckWritable(p); err != nil {
		t.Errorf("writable file refused: %v", err)
	}
	os.Chmod(p, 0o400)
	if err := CheckWritable(p); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("read-only file: %v", err)
	}
	if err := CheckWritable(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("folder: %v", err)
	}
	if err := CheckWritable(filepath.Join(dir, "missing.fd")); err == nil {
		t.Error("missing file accepted")
	}
	// A symlink's target is what gets replaced.
	os.Chmod(p, 0o600)
	link := filepath.Join(dir, "link.fd")
	os.Symlink(p, link)
	if err := CheckWritable(link); err != nil {
		t.Errorf("symlink to writable file: %v", err)
	}
}

func TestOpenBad(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	ms := readFile(t, msVars)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"text", []byte("not a firmware volume at all, just some text to be long enough to hold a header")},
		{"truncated", ms[:len(ms)/3]},
		{"code", ms[:4096]},
	} {
		p := filepath.Join(dir, tc.name)
		os.WriteFile(p, tc.b, 0o644)
		_, err := Open(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: got %v, want an error naming the file", tc.name, err)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file opened")
	}
}

func TestVarForFile(t *testing.T) {
	for in, want := range map[string]string{
		"DBXUpdate-amd64.bin": "dbx", "/x/KEKUpdate_Microsoft.bin": "KEK", "DBUpdate2024.bin": "db",
		"signed-db-update.auth": "db", "update.bin": "",
	} {
		got, ok := VarForFile(in)
		if got != want || ok != (want != "") {
			t.Errorf("VarForFile(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	got := []string{}
	for _, s := range []string{"db", "DBX", "kek", "KEK"} {
		n, err := NormalizeVar(s)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "KEK,KEK,db,dbx" {
		t.Errorf("NormalizeVar: %v", got)
	}
	if _, err := NormalizeVar("PK"); err == nil {
		t.Error("PK accepted")
	}
}
