package luks_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/luks"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// need fails (never skips) when a tool is missing: scripts/deps.sh installs
// it.
func need(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s not found: install the Debian package %s (scripts/deps.sh)", tool, pkg)
	}
}

func sh(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// format makes a LUKS2 volume in a file with Debian's cryptsetup (a fast
// PBKDF: the key is "secret" in the file key).
func format(t testing.TB, dir string, extra ...string) string {
	t.Helper()
	need(t, "cryptsetup", "cryptsetup-bin")
	vol := filepath.Join(dir, "vol.img")
	if err := os.WriteFile(filepath.Join(dir, "key"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	sh(t, dir, nil, "truncate", "-s", "20M", vol)
	args := append([]string{"luksFormat", "-q", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}, extra...)
	sh(t, dir, nil, "cryptsetup", append(args, vol, "key")...)
	return vol
}

// importToken adds a token with cryptsetup token import.
func importToken(t testing.TB, dir, vol string, token any) {
	t.Helper()
	b, err := json.Marshal(token)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "token.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sh(t, dir, nil, "cryptsetup", "token", "import", "--json-file", f, vol)
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// clevisToken is a LUKS2 token as clevis-luks-bind imports it: the JWE in
// its flattened JSON form, the pin in the protected header. Clevis itself
// needs a TPM to seal; TestRealClevis runs it against swtpm, and this
// writes the same shape without one.
func clevisToken(slot string, protected string) map[string]any {
	return map[string]any{"type": "clevis", "keyslots": []string{slot},
		"jwe": map[string]string{"ciphertext": "", "encrypted_key": "", "iv": "AAAA", "protected": protected, "tag": "AAAA"}}
}

func tpm2Header(pcrs any, bank string) map[string]any {
	cfg := map[string]any{"hash": "sha256", "key": "ecc", "jwk_pub": "AA", "jwk_priv": "AA"}
	if pcrs != nil {
		cfg["pcr_ids"] = pcrs
		cfg["pcr_bank"] = bank
	}
	return map[string]any{"alg": "dir", "enc": "A256GCM", "clevis": map[string]any{"pin": "tpm2", "tpm2": cfg}}
}

func read(t testing.TB, vol string) *luks.Header {
	t.Helper()
	f, err := os.Open(vol)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	h, err := luks.Read(f, st.Size(), vol)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// dumpJSON is cryptsetup's own reading of the header's JSON metadata.
func dumpJSON(t testing.TB, vol string) (keyslots []int, tokens map[int]string) {
	t.Helper()
	var d struct {
		Keyslots map[string]json.RawMessage `json:"keyslots"`
		Tokens   map[string]struct {
			Type string `json:"type"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal([]byte(sh(t, "", nil, "cryptsetup", "luksDump", "--dump-json-metadata", vol)), &d); err != nil {
		t.Fatal(err)
	}
	tokens = map[int]string{}
	for k := range d.Keyslots {
		var n int
		fmt.Sscan(k, &n)
		keyslots = append(keyslots, n)
	}
	for k, v := range d.Tokens {
		var n int
		fmt.Sscan(k, &n)
		tokens[n] = v.Type
	}
	sort.Ints(keyslots)
	return keyslots, tokens
}

// agree checks vouch's keyslots and tokens against cryptsetup's.
func agree(t *testing.T, h *luks.Header, vol string) {
	t.Helper()
	ks, toks := dumpJSON(t, vol)
	var got []int
	for k := range h.Keyslots {
		got = append(got, k)
	}
	sort.Ints(got)
	if !reflect.DeepEqual(got, ks) {
		t.Errorf("keyslots: vouch %v, cryptsetup %v", got, ks)
	}
	gt := map[int]string{}
	for _, tk := range h.Tokens {
		gt[tk.ID] = tk.Type
	}
	if !reflect.DeepEqual(gt, toks) {
		t.Errorf("tokens: vouch %v, cryptsetup %v", gt, toks)
	}
	uuid := strings.TrimSpace(sh(t, "", nil, "cryptsetup", "luksUUID", vol))
	if h.UUID != uuid {
		t.Errorf("UUID: vouch %q, cryptsetup %q", h.UUID, uuid)
	}
}

// TestReadCryptsetup reads headers Debian's cryptsetup wrote, with tokens
// imported as Clevis and systemd-cryptenroll write them.
func TestReadCryptsetup(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	vol := format(t, dir, "--label", "data")
	h := read(t, vol)
	if h.Copy != "primary" || h.Label != "data" || len(h.Tokens) != 0 || len(h.Notes) != 0 {
		t.Errorf("fresh volume: %+v", h)
	}
	if _, ok := h.Sealed(); ok {
		t.Error("a volume without tokens is sealed")
	}

	importToken(t, dir, vol, clevisToken("0", b64(tpm2Header("0,7", "sha256"))))
	importToken(t, dir, vol, map[string]any{"type": "systemd-tpm2", "keyslots": []string{"0"},
		"tpm2-blob": "AA==", "tpm2-pcrs": []int{7, 4}, "tpm2-pcr-bank": "sha256", "tpm2-primary-alg": "ecc",
		"tpm2-policy-hash": "00", "tpm2-pin": false, "tpm2-pubkey-pcrs": []int{11}})
	tang := b64(map[string]any{"alg": "ECDH-ES", "clevis": map[string]any{"pin": "tang", "tang": map[string]any{"url": "http://tang.example"}}})
	tpm := b64(tpm2Header("7", "sha256"))
	// sss t=1 of tang and tpm2: tang alone unlocks; t=2: both needed.
	importToken(t, dir, vol, clevisToken("0", b64(map[string]any{"clevis": map[string]any{"pin": "sss", "sss": map[string]any{"t": 1, "jwe": []string{tang + "..x.y.z", tpm + "..x.y.z"}}}})))
	importToken(t, dir, vol, clevisToken("0", b64(map[string]any{"clevis": map[string]any{"pin": "sss", "sss": map[string]any{"t": 2, "jwe": []string{tang + "..x.y.z", tpm + "..x.y.z"}}}})))
	// pcr_ids as an array, without pcr_bank (Clevis's default bank is sha1).
	importToken(t, dir, vol, clevisToken("0", b64(tpm2Header([]int{7, 14}, ""))))
	importToken(t, dir, vol, clevisToken("0", tang))
	importToken(t, dir, vol, map[string]any{"type": "vendor-x", "keyslots": []string{}})

	h = read(t, vol)
	agree(t, h, vol)
	type want struct {
		typ, pin string
		tpm2     []luks.TPM2Binding
		required bool
	}
	wants := []want{
		{"clevis", "tpm2", []luks.TPM2Binding{{Bank: "sha256", PCRs: []int{0, 7}}}, true},
		{"systemd-tpm2", "", []luks.TPM2Binding{{Bank: "sha256", PCRs: []int{4, 7}, SignedPCRs: []int{11}}}, true},
		{"clevis", "sss(t=1: tang, tpm2)", []luks.TPM2Binding{{Bank: "sha256", PCRs: []int{7}}}, false},
		{"clevis", "sss(t=2: tang, tpm2)", []luks.TPM2Binding{{Bank: "sha256", PCRs: []int{7}}}, true},
		{"clevis", "tpm2", []luks.TPM2Binding{{Bank: "sha1", PCRs: []int{7, 14}}}, true},
		{"clevis", "tang", nil, false},
		{"vendor-x", "", nil, false},
	}
	if len(h.Tokens) != len(wants) {
		t.Fatalf("%d tokens, want %d: %+v", len(h.Tokens), len(wants), h.Tokens)
	}
	for i, w := range wants {
		tk := h.Tokens[i]
		if tk.ID != i || tk.Type != w.typ || tk.Pin != w.pin || !reflect.DeepEqual(tk.TPM2, w.tpm2) || tk.TPM2Required != w.required {
			t.Errorf("token %d: %+v, want %+v", i, tk, w)
		}
	}
	if pcrs, ok := h.Sealed(); !ok || !reflect.DeepEqual(pcrs, []int{0, 4, 7, 14}) {
		t.Errorf("Sealed() = %v %v", pcrs, ok)
	}
	if len(h.Notes) != 0 {
		t.Errorf("notes on a good header: %v", h.Notes)
	}

	// A damaged primary header: the secondary copy is read, and why is noted.
	b, err := os.ReadFile(vol)
	if err != nil {
		t.Fatal(err)
	}
	b[4096+10] ^= 0xff // inside the primary's JSON area
	if err := os.WriteFile(vol, b, 0o600); err != nil {
		t.Fatal(err)
	}
	h2 := read(t, vol)
	if h2.Copy != "secondary" || len(h2.Tokens) != len(wants) || len(h2.Notes) != 1 || !strings.Contains(h2.Notes[0], "checksum mismatch") {
		t.Errorf("damaged primary: copy %s, %d tokens, notes %v", h2.Copy, len(h2.Tokens), h2.Notes)
	}
}

func TestReadNotLUKS2(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	vol := format(t, dir, "--type", "luks1")
	f, err := os.Open(vol)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := luks.Read(f, 20<<20, "vol.img"); err == nil || !strings.Contains(err.Error(), "LUKS version 1") {
		t.Errorf("LUKS1: %v", err)
	}
	if _, err := luks.Read(bytes.NewReader(make([]byte, 8192)), 8192, "zeros"); !errors.Is(err, luks.ErrNotLUKS) {
		t.Errorf("zeros: %v", err)
	}
}

func TestReadBadInput(t *testing.T) {
	good := make([]byte, 64<<10)
	copy(good, "LUKS\xba\xbe\x00\x02")
	for name, b := range map[string][]byte{
		"short":      []byte("LUKS\xba\xbe\x00\x02"),
		"no json":    good,
		"huge size":  append([]byte("LUKS\xba\xbe\x00\x02\xff\xff\xff\xff\xff\xff\xff\xff"), make([]byte, 8192)...),
		"empty file": nil,
	} {
		_, err := luks.Read(bytes.NewReader(b), int64(len(b)), name)
		if err == nil || !strings.HasPrefix(err.Error(), "luks: "+name+": ") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
