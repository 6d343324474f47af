package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var (
	msCerts       = testfixtures.Data("secureboot", "certs")
	dbxUpdateFile = testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin")
)

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// storeCopy copies Debian's 2011-only OVMF store to a fresh folder.
func storeCopy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(ovmfVarsFile)
	if err != nil {
		t.Fatalf("%v: install the apt package ovmf", err)
	}
	return writeTemp(t, "vm1_VARS.fd", b)
}

// listCAs runs list --format json and returns the known CAs of db and KEK
// and the number of dbx entries.
func listCAs(t *testing.T, store string) (db, kek []string, dbx int) {
	t.Helper()
	code, out, errOut := run(t, "firmware", "vars", store, "list", "--format", "json")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	var r struct {
		Free      int `json:"free"`
		Variables []struct {
			Name     string   `json:"name"`
			KnownCAs []string `json:"known_cas"`
			Lists    []struct {
				Entries []json.RawMessage `json:"entries"`
			} `json:"signature_lists"`
		} `json:"variables"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	for _, v := range r.Variables {
		switch v.Name {
		case "db":
			db = v.KnownCAs
		case "KEK":
			kek = v.KnownCAs
		case "dbx":
			for _, l := range v.Lists {
				dbx += len(l.Entries)
			}
		}
	}
	return db, kek, dbx
}

func TestFirmwareVarsList(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	code, out, errOut := run(t, "firmware", "vars", ovmfVarsFile, "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"VARIABLE", "db ", "NV|BS|RT|AT", "Microsoft Corporation UEFI CA 2011 [microsoft-uefi-ca-2011]", "Microsoft Corporation KEK CA 2011", "bytes free"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	db, kek, dbx := listCAs(t, ovmfVarsFile)
	if strings.Join(db, ",") != "microsoft-windows-production-pca-2011,microsoft-uefi-ca-2011" || strings.Join(kek, ",") != "microsoft-kek-ca-2011" || dbx != 1 {
		t.Errorf("db %v kek %v dbx %d", db, kek, dbx)
	}
	code, out, _ = run(t, "firmware", "vars", "--help")
	if code != 0 || !strings.Contains(out, "vouch firmware vars vm1_VARS.fd db add microsoft-uefi-ca-2023\n") || !strings.Contains(out, "set-profile") {
		t.Errorf("help: exit %d\n%s", code, out)
	}
}

func TestFirmwareVarsEdits(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	store := storeCopy(t)
	orig := fileSum(t, store)
	ca2023 := filepath.Join(msCerts, "db-microsoft-uefi-ca-2023.der")

	// --dry-run writes nothing; a built-in name is the same certificate.
	if code, out, _ := run(t, "firmware", "vars", store, "db", "add", "microsoft-uefi-ca-2023", "--dry-run"); code != 0 || !strings.Contains(out, "added 1 of 1 certificates (Microsoft UEFI CA 2023)") {
		t.Errorf("db add microsoft-uefi-ca-2023: exit %d\n%s", code, out)
	}
	code, out, errOut := run(t, "firmware", "vars", store, "db", "add", ca2023, "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run, would write: db: added 1 of 1 certificates (Microsoft UEFI CA 2023)") || fileSum(t, store) != orig {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(store + ".vouch-bak"); err == nil {
		t.Error("dry run wrote a backup")
	}

	code, out, errOut = run(t, "firmware", "vars", store, "db", "add", ca2023)
	if code != 0 || !strings.Contains(out, "db: added 1 of 1 certificates (Microsoft UEFI CA 2023); 3 entries now;") || !strings.Contains(out, "bytes free") || !strings.Contains(out, "original kept as "+store+".vouch-bak") {
		t.Fatalf("db add: exit %d\n%s%s", code, out, errOut)
	}
	if fileSum(t, store+".vouch-bak") != orig {
		t.Error("backup is not the original")
	}
	db, _, _ := listCAs(t, store)
	if strings.Join(db, ",") != "microsoft-windows-production-pca-2011,microsoft-uefi-ca-2011,microsoft-uefi-ca-2023" {
		t.Errorf("db after add: %v", db)
	}
	// Again: nothing to change, file untouched.
	after := fileSum(t, store)
	code, out, _ = run(t, "firmware", "vars", store, "db", "add", ca2023)
	if code != 0 || !strings.Contains(out, "1 already present") || !strings.Contains(out, "nothing to change") || fileSum(t, store) != after {
		t.Errorf("second db add: exit %d\n%s", code, out)
	}

	code, out, errOut = run(t, "firmware", "vars", store, "kek", "add", "microsoft-kek-2k-ca-2023", "--no-backup")
	if code != 0 || !strings.Contains(out, "KEK: added 1 of 1 certificates (Microsoft Corporation KEK 2K CA 2023)") || !strings.Contains(out, "(no backup)") {
		t.Fatalf("kek add: exit %d\n%s%s", code, out, errOut)
	}

	h := strings.Repeat("ab", 32)
	code, out, errOut = run(t, "firmware", "vars", store, "dbx", "add-hash", h, "--format", "json")
	if code != 0 {
		t.Fatalf("dbx add-hash: exit %d %s", code, errOut)
	}
	var res struct {
		Changes []struct {
			Variable string `json:"variable"`
			Added    int    `json:"added"`
		} `json:"changes"`
		Written bool `json:"written"`
		Free    int  `json:"free"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Changes) != 1 || res.Changes[0].Added != 1 || !res.Written || res.Free <= 0 {
		t.Errorf("dbx add-hash json: %v\n%s", err, out)
	}

	// apply: the variable comes from the file name; the signature is
	// checked against the store's KEK.
	code, out, errOut = run(t, "firmware", "vars", store, "apply", dbxUpdateFile)
	if code != 0 || !strings.Contains(out, "dbx: applied") || !strings.Contains(out, "added 443 of 443 entries") || !strings.Contains(out, "signature verified by KEK: Microsoft Corporation KEK CA 2011") {
		t.Fatalf("apply: exit %d\n%s%s", code, out, errOut)
	}
	if _, _, dbx := listCAs(t, store); dbx != 1+1+443 {
		t.Errorf("dbx has %d entries, want 445", dbx)
	}
	// Renamed, the update needs --var.
	b, _ := os.ReadFile(dbxUpdateFile)
	renamed := writeTemp(t, "update.bin", b)
	if code, _, errOut = run(t, "firmware", "vars", store, "apply", renamed); code != 2 || !strings.Contains(errOut, "--var") {
		t.Errorf("apply without --var: exit %d %s", code, errOut)
	}
	code, out, _ = run(t, "firmware", "vars", store, "apply", renamed, "--var", "dbx")
	if code != 0 || !strings.Contains(out, "added 0 of 443 entries, 443 already present") {
		t.Errorf("apply --var dbx again: exit %d\n%s", code, out)
	}
	// Applied to db, the signature does not verify: reported, still applied.
	code, out, _ = run(t, "firmware", "vars", store, "apply", renamed, "--var", "db", "--dry-run")
	if code != 0 || !strings.Contains(out, "signature NOT verified") {
		t.Errorf("apply --var db: exit %d\n%s", code, out)
	}

	// set-profile with the built-in certificates: only the 2023 CAs remain
	// in db and KEK; dbx is kept. The same from a folder gives the same
	// store.
	withDir := writeTemp(t, "withdir.fd", readFile(t, store))
	if code, out, errOut := run(t, "firmware", "vars", withDir, "set-profile", "microsoft-2023", "--certs", msCerts, "--no-backup"); code != 0 {
		t.Fatalf("set-profile --certs: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, "firmware", "vars", store, "set-profile", "microsoft-2023")
	if code != 0 || !strings.Contains(out, "db: set to profile microsoft-2023") || !strings.Contains(out, "KEK: set to profile microsoft-2023") {
		t.Fatalf("set-profile: exit %d\n%s%s", code, out, errOut)
	}
	db, kek, dbx := listCAs(t, store)
	if strings.Join(db, ",") != "windows-uefi-ca-2023,microsoft-uefi-ca-2023,microsoft-option-rom-uefi-ca-2023" || strings.Join(kek, ",") != "microsoft-kek-2k-ca-2023" || dbx != 445 {
		t.Errorf("after set-profile: db %v kek %v dbx %d", db, kek, dbx)
	}
	if a, b := readFile(t, store), readFile(t, withDir); !bytes.Equal(a, b) {
		t.Errorf("set-profile with the built-in certificates and with --certs give different stores")
	}

	// export, read back by the secureboot command.
	dir := filepath.Join(t.TempDir(), "efivars")
	code, out, _ = run(t, "firmware", "vars", store, "export", dir)
	if code != 0 || !strings.Contains(out, "exported") {
		t.Fatalf("export: exit %d %s", code, out)
	}
	vs, err := efi.ReadVarDir(os.DirFS(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vs.Get("db", efi.ImageSecurityDatabaseGUID); !ok {
		t.Error("export lacks db")
	}
}

// fullStoreFile writes Debian's store with a filler variable that leaves
// almost no free space.
func fullStoreFile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(ovmfVarsFile)
	if err != nil {
		t.Fatalf("%v: install the apt package ovmf", err)
	}
	s, err := efi.ParseVarStore(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	n := s.Free() - 60 - 2*len("Filler0") - 2 - 40
	g, _ := efi.ParseGUID("16599402-f49d-4b62-80f9-e2f3a4667dc2")
	if err := s.Set(efi.Variable{Name: "Filler0", GUID: g, Attributes: efi.NonVolatile | efi.BootServiceAccess, Data: bytes.Repeat([]byte{1}, n)}); err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, "full_VARS.fd", s.Bytes())
}

func TestFirmwareVarsBadInput(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	ca2023 := filepath.Join(msCerts, "db-microsoft-uefi-ca-2023.der")
	upd, err := os.ReadFile(dbxUpdateFile)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := os.ReadFile(ovmfVarsFile)
	if err != nil {
		t.Fatalf("%v: install the apt package ovmf", err)
	}
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) string
		args  func(t *testing.T) []string
		want  string
	}{
		{"not a variable store", func(t *testing.T) string {
			return writeTemp(t, "x.fd", []byte("just text, not a firmware volume; just text, not a firmware volume"))
		},
			func(*testing.T) []string { return []string{"list"} }, "not a firmware volume"},
		{"truncated store", func(t *testing.T) string { return writeTemp(t, "t.fd", ms[:200000]) },
			func(*testing.T) []string { return []string{"db", "add", ca2023} }, "exceeds file size"},
		{"certificate that is not one", storeCopy,
			func(t *testing.T) []string { return []string{"db", "add", writeTemp(t, "bogus.der", []byte("hello"))} }, "bogus.der: not an X.509 certificate"},
		{"hash not 64 hex digits", storeCopy,
			func(*testing.T) []string { return []string{"dbx", "add-hash", strings.Repeat("a", 63)} }, "want 64 hex digits"},
		{"hash not hex", storeCopy,
			func(*testing.T) []string { return []string{"dbx", "add-hash", strings.Repeat("zz", 32)} }, "want 64 hex digits"},
		{"update with malformed signature lists", storeCopy,
			func(t *testing.T) []string { return []string{"apply", writeTemp(t, "DBXUpdate.bin", upd[:len(upd)-7])} }, "malformed signature lists"},
		{"update that is not one", storeCopy,
			func(t *testing.T) []string { return []string{"apply", writeTemp(t, "dbx.bin", []byte("nope"))} }, "not a signed variable update"},
		{"store with no free space", fullStoreFile,
			func(*testing.T) []string { return []string{"db", "add", ca2023} }, "bytes free"},
		{"read-only store", func(t *testing.T) string {
			p := storeCopy(t)
			os.Chmod(p, 0o444)
			return p
		}, func(*testing.T) []string { return []string{"db", "add", ca2023} }, "read-only"},
		{"set-profile missing CA", storeCopy,
			func(t *testing.T) []string { return []string{"set-profile", "microsoft-both", "--certs", t.TempDir()} }, "Microsoft Windows Production PCA 2011"},
		{"unknown profile", storeCopy,
			func(*testing.T) []string { return []string{"set-profile", "microsoft-1999", "--certs", msCerts} }, "unknown profile"},
		{"unknown subcommand", storeCopy, func(*testing.T) []string { return []string{"pk", "add", ca2023} }, "unknown subcommand"},
		{"flag of another subcommand", storeCopy, func(*testing.T) []string { return []string{"db", "add", ca2023, "--certs", msCerts} }, "does not take --certs"},
		{"missing certificate", storeCopy, func(*testing.T) []string { return []string{"db", "add"} }, "certificate"},
		{"missing certificate file", storeCopy, func(*testing.T) []string { return []string{"db", "add", "/nonexistent/ca.der"} }, "no such file"},
		{"bad --var", storeCopy, func(*testing.T) []string { return []string{"apply", dbxUpdateFile, "--var", "PK"} }, "want db, dbx or KEK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := tc.store(t)
			args := tc.args(t)
			before := fileSum(t, store)
			code, out, errOut := run(t, append([]string{"firmware", "vars", store}, args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2\n%s%s", code, out, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q lacks %q", errOut, tc.want)
			}
			if strings.Count(strings.TrimSpace(errOut), "\n") > 1 {
				t.Errorf("more than one message: %q", errOut)
			}
			if fileSum(t, store) != before {
				t.Error("the store changed")
			}
			if _, err := os.Stat(store + ".vouch-bak"); err == nil {
				t.Error("a backup was written for a refused edit")
			}
		})
	}
}
