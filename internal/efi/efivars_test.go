package efi

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

func readSample(t *testing.T, dir string) *VarSet {
	t.Helper()
	vs, err := ReadVarDir(os.DirFS(sbData(dir)), dir)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// describeBoot lists BootOrder and every Boot#### entry.
func describeBoot(vs *VarSet) string {
	var sb strings.Builder
	if order, err := vs.BootOrder(); err == nil {
		fmt.Fprintf(&sb, "BootOrder: %04X\n", order)
	} else {
		fmt.Fprintf(&sb, "BootOrder: %v\n", err)
	}
	for _, n := range vs.BootEntries() {
		lo, err := vs.BootEntry(n)
		if err != nil {
			fmt.Fprintf(&sb, "Boot%04X: error: %v\n", n, err)
			continue
		}
		fmt.Fprintf(&sb, "Boot%04X: attrs=0x%x %q %s file=%q optional=%x\n", n, lo.Attributes, lo.Description, lo.FilePath, lo.FilePath.FilePath(), lo.OptionalData)
	}
	return sb.String()
}

// TestEfivarsSamples decodes the real AMI efivarfs dumps shim's test suite
// carries.
func TestEfivarsSamples(t *testing.T) {
	for _, dir := range []string{"efivars-shim-test-data-0", "efivars-shim-test-data-1"} {
		t.Run(dir, func(t *testing.T) {
			vs := readSample(t, dir)
			golden(t, dir+".txt", []byte(describeVars(vs)+describeBoot(vs)))
		})
	}
}

func TestEfivarsFacts(t *testing.T) {
	vs := readSample(t, "efivars-shim-test-data-1")
	if vs.Source() != "efivars-shim-test-data-1" {
		t.Errorf("source %q", vs.Source())
	}
	order, err := vs.BootOrder()
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(order); got != "[0 1 2 3 4 5]" {
		t.Errorf("BootOrder %s", got)
	}
	b0, err := vs.BootEntry(0)
	if err != nil {
		t.Fatal(err)
	}
	if b0.Description != "Fedora" || !b0.Active() {
		t.Errorf("Boot0000 %q active=%v", b0.Description, b0.Active())
	}
	const hd = `HD(1,GPT,927f5841-dc54-4ff4-821c-d29b59c48ab1,0x800,0x1ff800)`
	if got, want := b0.FilePath.String(), hd+`/File(\EFI\FEDORA\SHIMX64.EFI)`; got != want {
		t.Errorf("Boot0000 path %s, want %s", got, want)
	}
	if got := b0.FilePath.FilePath(); got != `\EFI\FEDORA\SHIMX64.EFI` {
		t.Errorf("Boot0000 file %s", got)
	}
	b6, err := vs.BootEntry(6)
	if err != nil {
		t.Fatal(err)
	}
	want6 := `PciRoot(0x2)/Pci(0x1,0x4)/Pci(0x0,0x0)/NVMe(0x1,05-87-50-91-55-38-25-00)/` + hd + `/File(\EFI\fedora\shimx64.efi)`
	if b6.Description != "test" || b6.FilePath.String() != want6 {
		t.Errorf("Boot0006 %q %s, want %q %s", b6.Description, b6.FilePath, "test", want6)
	}
	b3, err := vs.BootEntry(3)
	if err != nil {
		t.Fatal(err)
	}
	if b3.Description != "UEFI:CD/DVD Drive" || b3.FilePath.String() != "BBS(0x81,,0x0)" {
		t.Errorf("Boot0003 %q %s", b3.Description, b3.FilePath)
	}
	if _, err := vs.BootEntry(0x77); !errors.Is(err, ErrNotFound) {
		t.Errorf("Boot0077: %v, want ErrNotFound", err)
	}

	sbat, ok := vs.Get("SbatLevel", ShimLockGUID)
	if !ok || !strings.HasPrefix(string(sbat.Data), "sbat,1,") || sbat.Attributes != NonVolatile|BootServiceAccess {
		t.Errorf("SbatLevel %q %v %v", sbat.Data, sbat.Attributes, ok)
	}
	sb, ok := vs.Get("SecureBoot", GlobalVariableGUID)
	if !ok || len(sb.Data) != 1 || sb.Data[0] != 1 {
		t.Errorf("SecureBoot %v %v", sb.Data, ok)
	}
	for _, db := range []struct {
		name string
		guid GUID
		typ  string
	}{
		{"PK", GlobalVariableGUID, "X509"}, {"KEK", GlobalVariableGUID, "X509"},
		{"db", ImageSecurityDatabaseGUID, "X509"}, {"dbx", ImageSecurityDatabaseGUID, "SHA256"},
		{"MokList", ShimLockGUID, "X509"}, {"MokListX", ShimLockGUID, "SHA256"},
	} {
		lists, err := vs.SignatureLists(db.name, db.guid)
		if err != nil {
			t.Errorf("%s: %v", db.name, err)
			continue
		}
		found := false
		for _, l := range lists {
			found = found || l.TypeName() == db.typ
		}
		if !found {
			t.Errorf("%s has no %s list", db.name, db.typ)
		}
	}
	kek, _ := vs.SignatureLists("KEK", GlobalVariableGUID)
	var cns []string
	for _, l := range kek {
		for _, s := range l.Signatures {
			if l.Type == CertX509GUID {
				cns = append(cns, certName(s.Data))
			}
		}
	}
	if !strings.Contains(strings.Join(cns, ";"), "CN=Microsoft Corporation KEK CA 2011") {
		t.Errorf("KEK subjects %v", cns)
	}
}

func TestReadVarDirFake(t *testing.T) {
	fsys := fstest.MapFS{
		"Timeout-8be4df61-93ca-11d2-aa0d-00e098032b8c": {Data: []byte{7, 0, 0, 0, 5, 0}},
		"README": {Data: []byte("not a variable")},
		"Bad-notaguid-93ca-11d2-aa0d-00e098032b8c":        {Data: []byte{7, 0, 0, 0}},
		"sub-8be4df61-93ca-11d2-aa0d-00e098032b8c/x":      {Data: []byte{1}},
		"Empty-8be4df61-93ca-11d2-aa0d-00e098032b8c":      {Data: []byte{6, 0, 0, 0}},
		"Boot0001-8be4df61-93ca-11d2-aa0d-00e098032b8c":   {Data: []byte{7, 0, 0, 0, 1, 0, 0, 0, 4, 0, 'X', 0, 0, 0, 0x7f, 0xff, 4, 0}},
		"BootOrder-8be4df61-93ca-11d2-aa0d-00e098032b8c":  {Data: []byte{7, 0, 0, 0, 1, 0}},
		"Boot0001x-8be4df61-93ca-11d2-aa0d-00e098032b8c":  {Data: []byte{7, 0, 0, 0}},
		"Bootabcd-8be4df61-93ca-11d2-aa0d-00e098032b8c":   {Data: []byte{7, 0, 0, 0}},
		"MokList-605dab50-e046-4300-abb6-3dd810dd8b23":    {Data: []byte{3, 0, 0, 0}},
		"Dup-605DAB50-E046-4300-ABB6-3DD810DD8B23-extra":  {Data: []byte{3, 0, 0, 0}},
		"Upper-605DAB50-E046-4300-ABB6-3DD810DD8B23":      {Data: []byte{3, 0, 0, 0, 9}},
		"-605dab50-e046-4300-abb6-3dd810dd8b23":           {Data: []byte{3, 0, 0, 0}},
		"Timeout2-8be4df61-93ca-11d2-aa0d-00e098032b8c.x": {Data: []byte{}},
	}
	vs, err := ReadVarDir(fsys, "fake")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vs.All() {
		names = append(names, v.Name+"/"+v.Attributes.String())
	}
	want := "Boot0001/NV|BS|RT,Boot0001x/NV|BS|RT,BootOrder/NV|BS|RT,Bootabcd/NV|BS|RT,Empty/BS|RT,MokList/NV|BS,Timeout/NV|BS|RT,Upper/NV|BS"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("variables %s\nwant      %s", got, want)
	}
	if got := fmt.Sprint(vs.BootEntries()); got != "[1]" {
		t.Errorf("boot entries %s", got)
	}
	lo, err := vs.BootEntry(1)
	if err != nil || lo.Description != "X" || len(lo.FilePath) != 0 {
		t.Errorf("Boot0001 %+v %v", lo, err)
	}
	fsys["Short-8be4df61-93ca-11d2-aa0d-00e098032b8c"] = &fstest.MapFile{Data: []byte{7, 0, 0}}
	_, err = ReadVarDir(fsys, "fake")
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(fe.Source, "Short-8be4df61") {
		t.Errorf("3-byte file: %v, want a FormatError naming the file", err)
	}
}
