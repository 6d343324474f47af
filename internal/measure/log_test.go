package measure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
)

func realLog(t testing.TB) ([]byte, PCRs) {
	t.Helper()
	b, err := os.ReadFile("testdata/ovmf-swtpm-debian12.log")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := os.ReadFile("testdata/ovmf-swtpm-debian12.pcrs")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePCRs(pb, "ovmf-swtpm-debian12.pcrs")
	if err != nil {
		t.Fatal(err)
	}
	return b, p
}

func TestParseRealLog(t *testing.T) {
	b, tpm := realLog(t)
	lg, err := Parse(b, "real")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Bank{SHA1, SHA256, SHA384, SHA512}; !equalBanks(lg.Banks, want) {
		t.Errorf("banks %v, want %v", lg.Banks, want)
	}
	if len(lg.Events) != 51 {
		t.Errorf("%d events, want 51", len(lg.Events))
	}
	for _, f := range lg.Findings {
		t.Errorf("finding on a real log: %s", f)
	}
	// IMA extends PCR 10 after boot, with a log of its own: not a mismatch.
	tpm[SHA256][10] = bytes.Repeat([]byte{0x5e}, 32)
	mm, verr := lg.Compare(tpm)
	if len(mm) != 0 || verr != nil {
		t.Fatalf("the real log does not replay: %v %v", mm, verr)
	}
	// A pre-OS PCR the log never extends must be at its reset value.
	tpm[SHA256][6] = bytes.Repeat([]byte{0x66}, 32)
	if mm, _ := lg.Compare(tpm); len(mm) != 1 || mm[0].PCR != 6 {
		t.Errorf("a changed PCR 6: mismatches %v", mm)
	}
	delete(tpm[SHA256], 6)
	// Every event type firmware and shim write here is decoded.
	seen := map[string]bool{}
	for _, e := range lg.Events {
		seen[e.TypeName] = true
		if e.Description == "" && e.Type != evNoAction {
			t.Errorf("event %d (%s) has no description", e.Seq, e.TypeName)
		}
	}
	for _, want := range []string{"EV_EFI_VARIABLE_DRIVER_CONFIG", "EV_EFI_VARIABLE_AUTHORITY", "EV_EFI_BOOT_SERVICES_APPLICATION",
		"EV_SEPARATOR", "EV_EFI_ACTION", "EV_IPL", "EV_EFI_VARIABLE_BOOT", "EV_EFI_GPT_EVENT"} {
		if !seen[want] {
			t.Errorf("the real log has no %s", want)
		}
	}
	x := lg.Explain()
	if a, ok := x.ShimAuthority(); !ok || a.CA != "microsoft-uefi-ca-2011" {
		t.Errorf("shim authority %+v", a)
	}
	var sbat, mok bool
	for _, a := range x.Authorities {
		sbat = sbat || (a.Variable == "SbatLevel" && strings.Contains(a.Description, "sbat,1,"))
		mok = mok || (a.Variable == "MokListRT" && strings.Contains(a.Description, "Debian Secure Boot CA"))
	}
	if !sbat || !mok {
		t.Errorf("shim's SbatLevel (%v) or vendor certificate (%v) not explained: %+v", sbat, mok, x.Authorities)
	}
}

func equalBanks(a, b []Bank) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// offsets returns each crypto-agile event's offset (index 0: the Spec ID event).
func offsets(t *testing.T, b []byte) []int {
	t.Helper()
	le := binary.LittleEndian
	algs, _ := specIDAlgs(le.Uint32(b[4:]), b[32:32+le.Uint32(b[28:])])
	out := []int{0}
	off := 32 + int(le.Uint32(b[28:]))
	for off < len(b) {
		out = append(out, off)
		n := int(le.Uint32(b[off+8:]))
		p := off + 12
		for i := 0; i < n; i++ {
			p += 2 + int(algs[le.Uint16(b[p:])])
		}
		off = p + 4 + int(le.Uint32(b[p:]))
	}
	return out
}

func TestBadLogs(t *testing.T) {
	b, tpm := realLog(t)
	offs := offsets(t, b)
	ev10 := offs[10]
	cases := []struct {
		name string
		log  func() []byte
		want string // in the error
	}{
		{"empty", func() []byte { return nil }, "empty event log"},
		{"truncated header", func() []byte { return b[:20] }, "truncated"},
		{"truncated mid-event", func() []byte { return b[:ev10+30] }, "event 10 at offset"},
		{"truncated event data", func() []byte { return b[:len(b)-3] }, "runs past the end"},
		{"digest count overrun", func() []byte {
			c := bytes.Clone(b)
			binary.LittleEndian.PutUint32(c[ev10+8:], 1000)
			return c
		}, "event 10 at offset " + itoa(ev10) + ": digest count 1000"},
		{"unknown digest algorithm", func() []byte {
			c := bytes.Clone(b)
			binary.LittleEndian.PutUint16(c[ev10+12:], 0x0012)
			return c
		}, "algorithm 0x0012"},
		{"huge event size", func() []byte {
			c := bytes.Clone(b)
			p := ev10 + 12 + 4*2 + 20 + 32 + 48 + 64
			binary.LittleEndian.PutUint32(c[p:], 0xffffffff)
			return c
		}, "event 10"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.log(), "bad.log")
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a *ParseError", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "measure: bad.log: ") {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
		})
	}

	t.Run("unknown event type", func(t *testing.T) {
		c := bytes.Clone(b)
		binary.LittleEndian.PutUint32(c[ev10+4:], 0x0000abcd)
		lg, err := Parse(c, "odd.log")
		if err != nil {
			t.Fatal(err)
		}
		if len(lg.Findings) != 1 || lg.Findings[0].Seq != 10 || !strings.Contains(lg.Findings[0].String(), "unknown event type 0x0000abcd") {
			t.Errorf("findings %v, want one naming event 10's unknown type", lg.Findings)
		}
	})

	t.Run("does not replay", func(t *testing.T) {
		// Event data changed after measuring (the separator of PCR 7):
		// the digest no longer matches, and the TPM's PCR 7 differs.
		lg, err := Parse(b, "x")
		if err != nil {
			t.Fatal(err)
		}
		var sep *Event
		for _, e := range lg.Events {
			if e.PCR == 7 && e.Type == evSeparator {
				sep = e
			}
		}
		c := bytes.Clone(b)
		d := sep.Digests[SHA256]
		i := bytes.Index(c, d)
		c[i] ^= 0xff
		lg, err = Parse(c, "tampered.log")
		if err != nil {
			t.Fatal(err)
		}
		// go-attestation's Verify counts a PCR verified when any one bank
		// replays (replayEvents), so it accepts this log: the SHA-1, SHA-384
		// and SHA-512 digests are intact. vouch compares every bank.
		mm, verr := lg.Compare(tpm)
		if verr != nil {
			t.Errorf("go-attestation: %v (it verifies a PCR by any one bank)", verr)
		}
		if len(mm) != 1 || mm[0].PCR != 7 || mm[0].Bank != SHA256 || len(mm[0].Suspect) != 1 || mm[0].Suspect[0].Seq != sep.Seq {
			t.Fatalf("mismatches %v, want PCR 7 sha256 naming event %d", mm, sep.Seq)
		}
		if s := mm[0].String(); !strings.Contains(s, "EV_SEPARATOR") || !strings.Contains(s, "not the hash of the event data") {
			t.Errorf("mismatch %q does not name the event and why", s)
		}
	})
}

func itoa(i int) string { return strconv.Itoa(i) }

func fmtInt(i int) string { return strconv.Itoa(i) }

func TestReadPCRsSysfs(t *testing.T) {
	fsys := fstest.MapFS{}
	for i := 0; i < NumPCRs; i++ {
		fsys[PCRDir+"/pcr-sha256/"+fmtInt(i)] = &fstest.MapFile{Data: []byte(strings.Repeat("AB", 32) + "\n")}
	}
	p, err := ReadPCRs(fsys, []Bank{SHA1, SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 1 || len(p[SHA256]) != NumPCRs || p[SHA256][7].String() != strings.Repeat("ab", 32) {
		t.Errorf("read %v", p)
	}
	if _, err := ReadPCRs(fstest.MapFS{}, []Bank{SHA256}); err == nil {
		t.Error("no sysfs PCRs: want an error")
	}
}

func TestParsePCRsForms(t *testing.T) {
	pcrread := "sha256:\n  7 : 0x" + strings.Repeat("0A", 32) + "\n  4 : 0x" + strings.Repeat("0b", 32) + "\n"
	p, err := ParsePCRs([]byte(pcrread), "pcrread")
	if err != nil {
		t.Fatal(err)
	}
	if p[SHA256][7].String() != strings.Repeat("0a", 32) || len(p[SHA256]) != 2 {
		t.Errorf("tpm2_pcrread form: %v", p)
	}
	for _, bad := range []string{"", "sha256 99 00", "sha256 7 zz", "sha256 7 00", "md5 1 00", "junk"} {
		if _, err := ParsePCRs([]byte(bad), "bad"); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestSealedDisks(t *testing.T) {
	fsys := fstest.MapFS{CrypttabPath: &fstest.MapFile{Data: []byte(`# <name> <device> <key> <options>
root UUID=1 none luks,discard,tpm2-device=auto
data UUID=2 none tpm2-device=auto,tpm2-pcrs=0+secure-boot-policy
home UUID=3 none tpm2-device=auto,tpm2-pcrs=4
swap /dev/sdb none luks
`)}}
	disks, err := SealedDisks(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) != 3 || joinInts(disks[0].PCRs) != "7" || disks[0].PCRsKnown || joinInts(disks[1].PCRs) != "0+7" || joinInts(disks[2].PCRs) != "4" {
		t.Fatalf("sealed disks %+v", disks)
	}
	p := &Prediction{PCRs: []PCRValue{{Bank: SHA256, PCR: 7, Changed: true}, {Bank: SHA256, PCR: 4}}}
	v := JudgeSealed(disks, p)
	if v[0].Unlocks || v[1].Unlocks || !v[2].Unlocks {
		t.Errorf("verdicts %+v", v)
	}
	if none, err := SealedDisks(fstest.MapFS{}); err != nil || none != nil {
		t.Errorf("no crypttab: %v %v", none, err)
	}
}
