package efi

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// ovmfDir holds Debian's OVMF builds (package ovmf).
const ovmfDir = "/usr/share/OVMF"

// realStores are the variable store templates Debian 12's ovmf package ships.
var realStores = []string{
	"OVMF_VARS.fd",
	"OVMF_VARS.ms.fd",
	"OVMF_VARS_4M.fd",
	"OVMF_VARS_4M.ms.fd",
	"OVMF_VARS_4M.snakeoil.fd",
}

// sbData is the public Secure Boot reference data in the repository's
// testdata/secureboot.
func sbData(parts ...string) string {
	return testfixtures.Data(append([]string{"secureboot"}, parts...)...)
}

func ovmfPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(ovmfDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing: install the Debian package ovmf (apt-get install ovmf): %v", p, err)
	}
	return p
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testfixtures.Golden(t, name, got, *update)
}

// describeVars lists variables with attributes, size and a digest, then the
// signature lists of PK, KEK, db, dbx (and any other signature database the
// set holds), naming X.509 subjects by CN.
func describeVars(vs *VarSet) string {
	var sb strings.Builder
	for _, v := range vs.All() {
		sum := sha256.Sum256(v.Data)
		fmt.Fprintf(&sb, "var %s-%s %s size=%d sha256=%s\n", v.Name, v.GUID, v.Attributes, len(v.Data), hex.EncodeToString(sum[:8]))
	}
	for _, db := range []struct {
		name string
		guid GUID
	}{
		{"PK", GlobalVariableGUID}, {"KEK", GlobalVariableGUID},
		{"db", ImageSecurityDatabaseGUID}, {"dbx", ImageSecurityDatabaseGUID},
		{"MokList", ShimLockGUID}, {"MokListX", ShimLockGUID},
	} {
		if _, ok := vs.Get(db.name, db.guid); !ok {
			continue
		}
		lists, err := vs.SignatureLists(db.name, db.guid)
		if err != nil {
			fmt.Fprintf(&sb, "%s: error: %v\n", db.name, err)
			continue
		}
		fmt.Fprintf(&sb, "%s: %d lists\n", db.name, len(lists))
		for _, l := range lists {
			fmt.Fprintf(&sb, "  list %s entries=%d size=%d\n", l.TypeName(), len(l.Signatures), l.SignatureSize)
			if l.Type != CertX509GUID {
				continue
			}
			for _, s := range l.Signatures {
				fmt.Fprintf(&sb, "    owner=%s %s\n", s.Owner, certName(s.Data))
			}
		}
	}
	return sb.String()
}

func certName(der []byte) string {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "unparsable certificate: " + err.Error()
	}
	if c.Subject.CommonName == "" {
		return "subject=" + c.Subject.String()
	}
	return "CN=" + c.Subject.CommonName
}

func describeStore(name string, s *VarStore) string {
	l := s.Layout()
	var sb strings.Builder
	fmt.Fprintf(&sb, "file %s: %d bytes\n", name, l.FileSize)
	fmt.Fprintf(&sb, "store header 0x%x, records 0x%x..0x%x, store end 0x%x, free %d bytes, authenticated=%v, records=%d live=%d\n",
		l.StoreOffset, l.FirstRecord, l.End, l.StoreEnd, s.Free(), s.Authenticated(), l.Records, l.Live)
	sb.WriteString(describeVars(s.Vars()))
	return sb.String()
}
