package secureboot

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/authenticode/authenticodetest"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/vm"
)

// TestQEMUDbxEntryTypes reproduces every dbx entry type with real OVMF boots
// (Debian's Secure Boot build, its Microsoft-keyed store edited with the efi
// store writer) and checks that vouch's firmware verdict is OVMF's, image by
// image. The rules are on VerifyPolicy.
//
// The images are Debian's shim, re-signed: Microsoft's roots are not at hand
// (nor embedded in shim's signatures), so the test makes two chains of its own,
// A and B, each root → intermediate → leaf, signs with the leaf embedding the
// leaf and the intermediate (as Microsoft does), and puts both intermediates
// in db next to Microsoft's CAs (2011 and 2023). Per chain X two images:
// "X" (that signature alone) and "2023+X" (Debian's signature by the Microsoft
// UEFI CA 2023, then X's), which tells a forbidden signature (IsForbiddenByDbx:
// the image is refused whatever the other signature) from one that is merely
// not allowed (IsAllowedByDb: the 2023 signature still lets it run).
//
// Each boot's dbx holds one entry about chain A and one about chain B, so one
// boot answers two cases (7 boots in all, two at a time: about 4 minutes
// under TCG on two loaded cores); its dbt holds both roots (a non-zero revocation time
// is still revoking: the signatures carry no timestamp). The ESP has the four
// images as Boot0100-0103 and no GRUB: an allowed shim finds no second stage
// and returns, and the boot manager goes on to the next option. One more boot
// puts the images' Authenticode SHA-256 (the same for all four: the
// certificate table is not hashed) in dbx.
func TestQEMUDbxEntryTypes(t *testing.T) {
	testfixtures.Long(t, testfixtures.QEMU)
	sh := debianShims(t)
	unsigned, err := authenticode.RemoveSignature(sh.only2023, 0)
	if err != nil {
		t.Fatal(err)
	}
	type chain struct {
		name              string
		root, inter, leaf *authenticodetest.Cert
		alone, with2023   []byte
	}
	mk := func(n string) *chain {
		c := &chain{name: n}
		c.root = authenticodetest.NewCA(t, "vouch dbx test root "+n, nil)
		c.inter = authenticodetest.NewCA(t, "vouch dbx test intermediate "+n, c.root)
		c.leaf = authenticodetest.NewLeaf(t, "vouch dbx test signer "+n, c.inter)
		sign := func(img []byte) []byte {
			b, err := authenticodetest.Sign(img, c.leaf.Cert, c.leaf.Key, []*x509.Certificate{c.inter.Cert}, crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		c.alone, c.with2023 = sign(unsigned), sign(sh.only2023)
		return c
	}
	chains := []*chain{mk("A"), mk("B")}
	certOf := func(c *chain, which string) *x509.Certificate {
		switch which {
		case "leaf":
			return c.leaf.Cert
		case "intermediate":
			return c.inter.Cert
		}
		return c.root.Cert
	}

	type entry struct {
		kind, cert string // kind: X509 or X509_SHA256/384/512
		timed      bool   // a non-zero revocation time
	}
	// Every certificate with every entry type, and every X509_SHA* type and
	// every certificate with a zero and a non-zero revocation time (edk2
	// reads the time the same way whatever the hash: IsCertHashFoundInDbx
	// then PassTimestampCheck), in 12 cases rather than all 21.
	cases := []entry{
		{"X509", "leaf", false}, {"X509", "intermediate", false},
		{"X509", "root", false}, {"X509_SHA256", "leaf", false},
		{"X509_SHA384", "leaf", true}, {"X509_SHA512", "leaf", false},
		{"X509_SHA256", "intermediate", true}, {"X509_SHA384", "intermediate", false},
		{"X509_SHA512", "intermediate", true}, {"X509_SHA256", "root", false},
		{"X509_SHA384", "root", true}, {"X509_SHA512", "root", true},
	}
	// What edk2's rules say, per image of the chain the entry is about.
	want := func(e entry) (alone, with2023 bool) {
		switch {
		case e.kind == "X509": // the chain verifies up to it: forbidden
			return false, false
		case e.cert == "leaf": // the signer: forbidden
			return false, false
		case e.cert == "intermediate": // the db match: not allowed
			return false, true
		}
		return true, true // a root not in db: never consulted
	}
	list := func(e entry, c *x509.Certificate) efi.SignatureList {
		if e.kind == "X509" {
			return efi.SignatureList{Type: efi.CertX509GUID, Signatures: []efi.SignatureData{{Owner: testOwner, Data: c.Raw}}}
		}
		var t [16]byte // EFI_TIME
		if e.timed {
			binary.LittleEndian.PutUint16(t[0:], 2024)
			t[2], t[3] = 1, 1
		}
		typ, h := map[string]efi.GUID{"X509_SHA256": efi.CertX509SHA256GUID, "X509_SHA384": efi.CertX509SHA384GUID, "X509_SHA512": efi.CertX509SHA512GUID}[e.kind],
			map[string]crypto.Hash{"X509_SHA256": crypto.SHA256, "X509_SHA384": crypto.SHA384, "X509_SHA512": crypto.SHA512}[e.kind]
		return efi.SignatureList{Type: typ, Signatures: []efi.SignatureData{{Owner: testOwner, Data: append(authenticode.TBSHash(c, h), t[:]...)}}}
	}
	ca2023 := readCert(t, "db-microsoft-uefi-ca-2023.der")
	isdb := efi.ImageSecurityDatabaseGUID
	files := []string{`\EFI\A\shimx64.efi`, `\EFI\A2023\shimx64.efi`, `\EFI\B\shimx64.efi`, `\EFI\B2023\shimx64.efi`}
	images := [][]byte{chains[0].alone, chains[0].with2023, chains[1].alone, chains[1].with2023}
	imageNames := []string{"A", "2023+A", "B", "2023+B"}
	store := func(dbx []efi.SignatureList) []byte {
		s, err := efi.ParseVarStore(addBootEntries(t, readArtefact(t, ovmfVars), files))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*x509.Certificate{ca2023, chains[0].inter.Cert, chains[1].inter.Cert} {
			if err := s.AppendSignatureList("db", isdb, x509List(c)[0]); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range dbx {
			if err := s.AppendSignatureList("dbx", isdb, l); err != nil {
				t.Fatal(err)
			}
		}
		// One list per certificate: an X509 list's entries share one size,
		// and two generated certificates differ in length by chance.
		for _, c := range []*x509.Certificate{chains[0].root.Cert, chains[1].root.Cert} {
			if err := s.AppendSignatureList("dbt", isdb, efi.SignatureList{Type: efi.CertX509GUID, Signatures: []efi.SignatureData{{Owner: testOwner, Data: c.Raw}}}); err != nil {
				t.Fatal(err)
			}
		}
		return s.Bytes()
	}

	// The boots: pairs of cases (A, B), then the image hash.
	type bootCase struct {
		name   string
		vars   []byte
		want   []bool // per image
		labels []string
	}
	var runs []bootCase
	for i := 0; i < len(cases); i += 2 {
		b := bootCase{want: make([]bool, 4), labels: make([]string, 4)}
		var dbx []efi.SignatureList
		var names []string
		for j, c := range chains {
			e := cases[(i+j)%len(cases)]
			if i+j >= len(cases) { // odd count: chain B without an entry
				b.want[2*j], b.want[2*j+1] = true, true
				b.labels[2*j], b.labels[2*j+1] = "no entry", "no entry"
				continue
			}
			dbx = append(dbx, list(e, certOf(c, e.cert)))
			b.want[2*j], b.want[2*j+1] = want(e)
			l := e.kind + " of the " + e.cert
			if strings.HasPrefix(e.kind, "X509_SHA") {
				l += map[bool]string{true: ", time 2024-01-01", false: ", time zero"}[e.timed]
			}
			b.labels[2*j], b.labels[2*j+1] = l, l
			names = append(names, c.name+": "+l)
		}
		b.name, b.vars = strings.Join(names, "; "), store(dbx)
		runs = append(runs, b)
	}
	digest := parseImage(t, unsigned).Digest(crypto.SHA256)
	runs = append(runs, bootCase{
		name:   "SHA256 of the image",
		vars:   store([]efi.SignatureList{{Type: efi.CertSHA256GUID, Signatures: []efi.SignatureData{{Owner: testOwner, Data: digest}}}}),
		want:   []bool{false, false, false, false},
		labels: []string{"SHA256 of the image", "SHA256 of the image", "SHA256 of the image", "SHA256 of the image"},
	})

	espFiles := map[string][]byte{}
	for i, f := range files {
		espFiles[strings.TrimPrefix(strings.ReplaceAll(f, `\`, "/"), "/")] = images[i]
	}
	var (
		mu   sync.Mutex
		rows []string
	)
	start := time.Now()
	t.Run("boots", func(t *testing.T) {
		for bi, b := range runs {
			t.Run(fmt.Sprint(bi), func(t *testing.T) {
				t.Parallel()
				fw := firmwareFromStore(t, b.vars)
				vouch := make([]bool, 4)
				for i, img := range images {
					d := fw.Verify(parseImage(t, img))
					vouch[i] = d.Allowed
					if d.Allowed != b.want[i] {
						t.Errorf("%s, image %s: vouch says allowed=%v, edk2's rules %v: %s (%s)", b.name, imageNames[i], d.Allowed, b.want[i], d.Reason, d.Explanation)
					}
				}
				dir := t.TempDir()
				r := bootOptions(t, dir, makeESP(t, dir, espFiles), b.vars, len(files))
				mu.Lock()
				defer mu.Unlock()
				for i := range images {
					got, ok := r.verdicts[i]
					if !ok {
						t.Errorf("%s, image %s: OVMF gave no verdict\nserial: %q", b.name, imageNames[i], tail([]byte(r.log)))
						continue
					}
					if got != vouch[i] {
						t.Errorf("%s, image %s: OVMF %s, vouch %s", b.name, imageNames[i], boots(got), boots(vouch[i]))
					}
					rows = append(rows, fmt.Sprintf("%-45s %-7s OVMF %-6s vouch %-6s (boot %d, %ds)", b.labels[i], imageNames[i], boots(got), boots(vouch[i]), bi, int(r.elapsed.Seconds())))
				}
			})
		}
	})
	sort.Strings(rows)
	t.Logf("dbx entry types under QEMU+OVMF, %d boots in %v:\n%s", len(rows)/len(images), time.Since(start).Round(time.Second), strings.Join(rows, "\n"))
}

type optionsResult struct {
	verdicts map[int]bool // boot option index (Boot0100 + i) → the firmware started it
	elapsed  time.Duration
	log      string
}

// bootOptions boots OVMF (Secure Boot) with vars and the ESP until the boot
// manager has tried Boot0100 .. Boot0100+n-1: "BdsDxe: starting BootXXXX"
// means the image passed verification, "failed to load BootXXXX ...: Access
// Denied" that it did not. Any other load failure fails the test.
func bootOptions(t *testing.T, dir string, esp, vars []byte, n int) optionsResult {
	t.Helper()
	qemu := tool(t, "qemu-system-x86_64", "qemu-system-x86")
	if _, err := os.Stat(ovmfCode); err != nil {
		t.Fatalf("%v: install the apt package ovmf", err)
	}
	espPath, varsPath, serial := filepath.Join(dir, "esp.img"), filepath.Join(dir, "vars.fd"), filepath.Join(dir, "serial.log")
	for p, b := range map[string][]byte{espPath: esp, varsPath: vars} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	slot, err := vm.AcquireSlot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Release()
	cmd := exec.Command(qemu, "-nodefaults", "-machine", "q35,smm=on",
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,file="+ovmfCode+",readonly=on",
		"-drive", "if=pflash,format=raw,unit=1,file="+varsPath,
		"-drive", "if=virtio,format=raw,file="+espPath,
		"-m", "256", "-serial", "file:"+serial, "-display", "none", "-monitor", "none",
		"-accel", "tcg", "-no-reboot")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}()
	deadline := time.NewTimer(5 * time.Minute)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			done <- err
			log, _ := os.ReadFile(serial)
			r, _ := parseOptions(string(log), n)
			t.Fatalf("qemu exited (%v) with %d of %d verdicts; stderr: %s; serial: %q", err, len(r), n, stderr.String(), tail(log))
		case <-deadline.C:
			log, _ := os.ReadFile(serial)
			t.Fatalf("no verdict for every boot option after %v; serial: %q", time.Since(begin), tail(log))
		case <-tick.C:
			log, _ := os.ReadFile(serial)
			r, err := parseOptions(string(log), n)
			if err != nil {
				t.Fatalf("%v; serial: %q", err, tail(log))
			}
			if len(r) == n {
				return optionsResult{verdicts: r, elapsed: time.Since(begin), log: string(log)}
			}
		}
	}
}

// parseOptions reads the boot manager's lines about Boot0100 and on.
func parseOptions(log string, n int) (map[int]bool, error) {
	out := map[int]bool{}
	lines := strings.Split(log, "\n")
	lines = lines[:len(lines)-1] // the last one may be half written
	for _, l := range lines {
		l = strings.TrimSpace(l)
		for i := 0; i < n; i++ {
			opt := fmt.Sprintf("Boot%04X ", 0x100+i)
			if _, seen := out[i]; seen {
				continue
			}
			switch {
			case strings.Contains(l, "BdsDxe: starting "+opt):
				out[i] = true
			case strings.Contains(l, "BdsDxe: failed to load "+opt):
				if !strings.HasSuffix(l, ": Access Denied") {
					return out, fmt.Errorf("the firmware could not load %s for another reason: %s", opt, l)
				}
				out[i] = false
			}
		}
	}
	return out, nil
}
