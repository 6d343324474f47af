package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// Debian's signed EFI binaries, relative to .cache/debs/x.
var signedEFI = []string{
	"shim-signed/usr/lib/shim/shimx64.efi.signed",
	"shim-helpers-amd64-signed/usr/lib/shim/fbx64.efi.signed",
	"shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed",
	"grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
	"grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
	"grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
}

func debianKernel(t testing.TB) string {
	t.Helper()
	return testfixtures.Kernel(t)
}

// oneline converts OpenSSL's "/C=US/O=Org/CN=Name" into the RFC 4514 form
// x509's Name.String gives ("CN=Name,O=Org,C=US").
func oneline(s string) string {
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(s), "/"), "/")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, ",")
}

type sbSig struct {
	issuer   string
	subjects []string
}

// sbverifyList runs sbverify --list and returns, per signature, the image
// signature issuer and the certificates' subjects.
func sbverifyList(t *testing.T, path string) []sbSig {
	t.Helper()
	need(t, "sbverify")
	out, _ := exec.Command("sbverify", "--list", path).Output() // exits 1 after listing
	var sigs []sbSig
	reIssuer := regexp.MustCompile(`^ - (/.*)$`)
	reSubject := regexp.MustCompile(`^ - subject: (.*)$`)
	inIssuers := false
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "signature "):
			sigs = append(sigs, sbSig{})
		case l == "image signature issuers:":
			inIssuers = true
		case l == "image signature certificates:":
			inIssuers = false
		case inIssuers && reIssuer.MatchString(l):
			sigs[len(sigs)-1].issuer = oneline(reIssuer.FindStringSubmatch(l)[1])
		case reSubject.MatchString(l):
			sigs[len(sigs)-1].subjects = append(sigs[len(sigs)-1].subjects, oneline(reSubject.FindStringSubmatch(l)[1]))
		}
	}
	if len(sigs) == 0 {
		t.Fatalf("sbverify --list %s listed nothing: %s", path, out)
	}
	return sigs
}

type sigsOutput struct {
	Signatures []map[string]any `json:"signatures"`
}

// TestSignaturesMatchSbverify: the signer lists equal sbverify --list on
// every signed EFI binary of Debian's packages.
func TestSignaturesMatchSbverify(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers) // sbverify
	files := []string{debianKernel(t)}
	for _, rel := range signedEFI {
		files = append(files, testfixtures.Deb(t, rel))
	}
	for _, f := range files {
		code, out, errs := run(t, "secureboot", "signatures", "--format", "json", f)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", f, code, errs)
		}
		var got sigsOutput
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		want := sbverifyList(t, f)
		var top []map[string]any
		for _, s := range got.Signatures {
			if s["nested"].(float64) == 0 {
				top = append(top, s)
			}
		}
		if len(top) != len(want) {
			t.Fatalf("%s: %d signatures, sbverify lists %d", f, len(top), len(want))
		}
		for i, s := range top {
			for _, k := range []string{"signerSubject", "signerIssuer", "chain", "digestAlgorithm", "digestMatches", "signatureValid", "knownCA"} {
				if _, ok := s[k]; !ok {
					t.Errorf("%s: signature %d lacks %q", f, i+1, k)
				}
			}
			if s["signerIssuer"] != want[i].issuer {
				t.Errorf("%s: signature %d issuer %q, sbverify %q", f, i+1, s["signerIssuer"], want[i].issuer)
			}
			var chain []string
			for _, c := range s["chain"].([]any) {
				chain = append(chain, c.(string))
			}
			sbs := append([]string(nil), want[i].subjects...)
			sort.Strings(chain)
			sort.Strings(sbs)
			if !reflect.DeepEqual(chain, sbs) {
				t.Errorf("%s: signature %d chain %q, sbverify certificates %q", f, i+1, chain, sbs)
			}
			if !containsStr(want[i].subjects, s["signerSubject"].(string)) {
				t.Errorf("%s: signer %q not among sbverify's %q", f, s["signerSubject"], want[i].subjects)
			}
			if s["digestMatches"] != true || s["signatureValid"] != true || s["digestAlgorithm"] != "sha256" {
				t.Errorf("%s: signature %d %v", f, i+1, s)
			}
		}
		t.Logf("%s: %d signature(s) agree with sbverify --list", filepath.Base(f), len(top))
	}
	// The shim's CAs.
	_, out, _ := run(t, "secureboot", "signatures", "--format", "json", testfixtures.Deb(t, signedEFI[0]))
	var got sigsOutput
	_ = json.Unmarshal([]byte(out), &got)
	if len(got.Signatures) != 2 || got.Signatures[0]["knownCA"] != "microsoft-uefi-ca-2011" || got.Signatures[1]["knownCA"] != "microsoft-uefi-ca-2023" {
		t.Errorf("shim known CAs: %v", got.Signatures)
	}
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

const ovmfVarsFile = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecureBootVerify(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.OVMF)
	shimFile := testfixtures.Deb(t, signedEFI[0])
	dual, err := os.ReadFile(shimFile)
	if err != nil {
		t.Fatal(err)
	}
	only2023, err := authenticode.RemoveSignature(dual, 0)
	if err != nil {
		t.Fatal(err)
	}
	shim2023 := writeTemp(t, "shim2023.efi", only2023)
	ca2023 := testfixtures.Data("secureboot", "certs", "db-microsoft-uefi-ca-2023.der")
	cases := []struct {
		args   []string
		code   int
		byWant string
	}{
		{[]string{"--vars", ovmfVarsFile, shimFile}, 0, "db: Microsoft Corporation UEFI CA 2011 (microsoft-uefi-ca-2011)"},
		{[]string{"--vars", ovmfVarsFile, shim2023}, 1, ""},
		{[]string{"--firmware", "microsoft-2023", shim2023}, 0, "microsoft-uefi-ca-2023"},
		{[]string{"--firmware", "microsoft-2011", shim2023}, 1, ""},
		{[]string{"--firmware", "microsoft-2011", "--db-add", "microsoft-uefi-ca-2023", shim2023}, 0, "--db-add microsoft-uefi-ca-2023"},
		{[]string{"--efivars", testfixtures.Data("secureboot", "efivars-shim-test-data-1"), shimFile}, 0, "microsoft-uefi-ca-2011"},
	}
	for _, c := range cases {
		code, out, errs := run(t, append([]string{"secureboot", "verify", "--format", "json"}, c.args...)...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d: %s %s", c.args, code, c.code, out, errs)
			continue
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%v: %v: %q", c.args, err, out)
		}
		for _, k := range []string{"allowed", "reason", "authorizedBy"} {
			if _, ok := d[k]; !ok {
				t.Errorf("%v: JSON lacks %q: %s", c.args, k, out)
			}
		}
		if d["allowed"] != (c.code == 0) || !strings.Contains(d["authorizedBy"].(string), c.byWant) {
			t.Errorf("%v: %s", c.args, out)
		}
	}
	// Table output for people.
	code, out, _ := run(t, "secureboot", "verify", "--vars", ovmfVarsFile, shim2023)
	if code != 1 || !strings.Contains(out, "DENIED") {
		t.Errorf("table: exit %d: %s", code, out)
	}
	// Usage errors.
	for _, args := range [][]string{
		{"secureboot", "verify", shimFile},
		{"secureboot", "verify", "--firmware", "microsoft-2099", shimFile},
		{"secureboot", "verify", "--firmware", "microsoft-2011", "--vars", ovmfVarsFile, shimFile},
		{"secureboot", "verify", "--firmware", "microsoft-2011", "--format", "xml", shimFile},
		{"secureboot", "--db-add", ca2023, t.TempDir()},
	} {
		if code, out, errs := run(t, args...); code != 2 || out != "" || errs == "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// TestSecureBootBadInput: malformed inputs give one line naming the file and
// the offset, exit 2 and nothing on stdout.
func TestSecureBootBadInput(t *testing.T) {
	testfixtures.NeedFixtures(t)
	shim, err := os.ReadFile(testfixtures.Deb(t, signedEFI[0]))
	if err != nil {
		t.Fatal(err)
	}
	truncated := writeTemp(t, "truncated.efi", shim[:len(shim)-100])
	varsDir := t.TempDir()
	shortVar := "db-d719b2cb-3d3a-4596-a3bc-dad00e67656f"
	if err := os.WriteFile(filepath.Join(varsDir, shortVar), []byte{7, 0}, 0o644); err != nil {
		t.Fatal(err)
	}
	notStore := writeTemp(t, "not-a-store.fd", bytes.Repeat([]byte{0xa5}, 4096))
	esp := espDir(t, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": shim})
	cases := []struct {
		args []string
		want []string // substrings of the one stderr line
	}{
		{[]string{"secureboot", "verify", "--firmware", "microsoft-2011", "--format", "json", truncated}, []string{truncated, "certificate table extends past end of file", "offset 0x"}},
		{[]string{"secureboot", "signatures", "--format", "json", truncated}, []string{truncated, "offset 0x"}},
		{[]string{"secureboot", "verify", "--efivars", varsDir, "--format", "json", testfixtures.Deb(t, signedEFI[0])}, []string{varsDir, shortVar, "offset 0x2"}},
		{[]string{"secureboot", "verify", "--vars", notStore, "--format", "json", testfixtures.Deb(t, signedEFI[0])}, []string{notStore, "not a firmware volume", "offset 0x28"}},
		{[]string{"secureboot", "--vars", notStore, "--format", "json", esp}, []string{notStore, "offset 0x"}},
		{[]string{"secureboot", "--efivars", varsDir, esp}, []string{shortVar, "offset 0x2"}},
		{[]string{"secureboot", "signatures", filepath.Join(t.TempDir(), "missing.efi")}, []string{"missing.efi"}},
	}
	for _, c := range cases {
		code, out, errs := run(t, c.args...)
		if code != 2 || out != "" {
			t.Errorf("%v: exit %d, stdout %q", c.args, code, out)
		}
		lines := strings.Split(strings.TrimSpace(errs), "\n")
		if len(lines) != 1 {
			t.Errorf("%v: stderr has %d lines: %q", c.args, len(lines), errs)
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%v: stderr %q lacks %q", c.args, errs, w)
			}
		}
	}
}

func espDir(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for p, b := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readDeb(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(testfixtures.Deb(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSecureBootTarget: every boot path with every stage, and the transition
// verdict, for an ESP directory.
func TestSecureBootTarget(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.OVMF)
	dual := readDeb(t, signedEFI[0])
	only2011, err := authenticode.RemoveSignature(dual, 1)
	if err != nil {
		t.Fatal(err)
	}
	grub := readDeb(t, signedEFI[3])
	esp := espDir(t, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": dual, "EFI/BOOT/grubx64.efi": grub})
	esp2011 := espDir(t, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": only2011, "EFI/BOOT/grubx64.efi": grub})

	code, out, errs := run(t, "secureboot", "--vars", ovmfVarsFile, "--format", "json", esp)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r struct {
		Target     string           `json:"target"`
		BootPaths  []map[string]any `json:"bootPaths"`
		Transition map[string]any   `json:"transition"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	for k, typ := range map[string]string{"shimSignedBy": "[]", "firmwareTrusts": "[]", "secureBootEnabled": "bool", "bootsToday": "bool", "bootsWith2023OnlyShim": "bool", "advice": "string"} {
		v, ok := r.Transition[k]
		if !ok {
			t.Errorf("transition lacks %q", k)
			continue
		}
		got := map[bool]string{true: "ok"}[(typ == "[]" && reflect.TypeOf(v) == reflect.TypeOf([]any{})) ||
			(typ == "bool" && reflect.TypeOf(v) == reflect.TypeOf(true)) || (typ == "string" && reflect.TypeOf(v) == reflect.TypeOf(""))]
		if got != "ok" {
			t.Errorf("transition.%s is %T, want %s", k, v, typ)
		}
	}
	if r.Transition["bootsToday"] != true || r.Transition["bootsWith2023OnlyShim"] != false || r.Transition["secureBootEnabled"] != true {
		t.Errorf("transition %v", r.Transition)
	}
	if len(r.BootPaths) != 1 || len(r.BootPaths[0]["stages"].([]any)) != 2 {
		t.Errorf("boot paths %v", r.BootPaths)
	}

	// 2011-only shim on firmware that trusts only the 2023 CA: exit 1.
	code, out, _ = run(t, "secureboot", "--firmware", "microsoft-2023", esp2011)
	if code != 1 || !strings.Contains(out, "DOES NOT BOOT") || !strings.Contains(out, "advice:") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	// No firmware: per-profile answers, exit 0.
	code, out, _ = run(t, "secureboot", esp)
	if code != 0 || !strings.Contains(out, "if microsoft-2023") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}

// TestSecureBootLiveNoUEFI: this host (and CI containers) boot without UEFI.
func TestSecureBootLiveNoUEFI(t *testing.T) {
	_, statErr := os.Stat("/sys/firmware/efi")
	for _, args := range [][]string{{"secureboot", "/"}, {"secureboot", "--live"}, {"secureboot", "--live", "--format", "json"}} {
		code, out, errs := run(t, args...)
		if statErr == nil {
			if code == 2 {
				t.Errorf("%v on a UEFI host: exit 2: %s", args, errs)
			}
			continue
		}
		if code != 0 || !strings.Contains(out, "no UEFI here: booted through legacy BIOS (or a container); the CA transition does not apply") {
			t.Errorf("%v: exit %d: %q %q", args, code, out, errs)
		}
	}
}

func TestSecureBootHelp(t *testing.T) {
	for _, args := range [][]string{{"secureboot", "--help"}, {"secureboot", "signatures", "--help"}, {"secureboot", "verify", "--help"}} {
		code, out, _ := run(t, args...)
		if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "vouch secureboot") {
			t.Errorf("%v: exit %d:\n%s", args, code, out)
		}
	}
}

// BenchmarkSecureBootTarget times `vouch secureboot` on the 2 GiB Debian
// image built by scripts/build-fixtures.sh.
func BenchmarkSecureBootTarget(b *testing.B) {
	testfixtures.NeedFixtures(b)
	img := testfixtures.Path(b, "debian.raw")
	for i := 0; i < b.N; i++ {
		var out, errb bytes.Buffer
		if code := Run(b.Context(), []string{"secureboot", "--firmware", "microsoft-both", "--format", "json", img}, &out, &errb); code != 0 {
			b.Fatalf("exit %d: %s", code, errb.String())
		}
	}
}
