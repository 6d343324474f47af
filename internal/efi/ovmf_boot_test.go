package efi

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/testfixtures"
	"github.com/vouch-dev/vouch/internal/vm"
)

// TestOVMFBootKeepsWrites is the truth test for store writing: a copy of
// Debian's key-less OVMF_VARS_4M.fd gets a new NV|BS|RT variable and a db
// holding the Microsoft UEFI CA 2023 (an authenticated NV|BS|RT|AT record),
// then boots under QEMU with the Secure Boot OVMF build until the firmware's
// boot manager has written its own variables. edk2 then has parsed our
// records, appended its own after them, and must still hold ours; a store it
// rejected would have been reformatted or lost the variables.
func TestOVMFBootKeepsWrites(t *testing.T) {
	testfixtures.Long(t, testfixtures.QEMU, testfixtures.OVMF)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatalf("qemu-system-x86_64 not found: install the Debian package qemu-system-x86: %v", err)
	}
	code := ovmfPath(t, "OVMF_CODE_4M.secboot.fd")
	orig := readFile(t, ovmfPath(t, "OVMF_VARS_4M.fd"))
	ca2023 := readFile(t, sbData("certs", "db-microsoft-uefi-ca-2023.der"))

	s, err := ParseVarStore(orig)
	if err != nil {
		t.Fatal(err)
	}
	var guid GUID
	if _, err := rand.Read(guid[:]); err != nil {
		t.Fatal(err)
	}
	guid[7] = guid[7]&0x0f | 0x40 // version 4
	guid[8] = guid[8]&0x3f | 0x80 // RFC 4122 variant
	payload := []byte("vouch " + guid.String())
	mine := Variable{Name: "VouchTest", GUID: guid, Attributes: NonVolatile | BootServiceAccess | RuntimeAccess, Data: payload}
	if err := s.Set(mine); err != nil {
		t.Fatal(err)
	}
	msOwner := mustGUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")
	if err := s.AppendSignatureList("db", ImageSecurityDatabaseGUID, SignatureList{Type: CertX509GUID, Signatures: []SignatureData{{Owner: msOwner, Data: ca2023}}}); err != nil {
		t.Fatal(err)
	}
	written := s.Bytes()
	ourEnd := s.Layout().End
	ourRecs := len(s.recs)

	dir := t.TempDir()
	copyPath := filepath.Join(dir, "COPY.fd")
	serial := filepath.Join(dir, "serial.log")
	if err := os.WriteFile(copyPath, written, 0o644); err != nil {
		t.Fatal(err)
	}

	// The machine-wide budget of QEMU guests (internal/vm).
	slot, err := vm.AcquireSlot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "q35,smm=on",
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,file="+code+",readonly=on",
		"-drive", "if=pflash,format=raw,unit=1,file="+copyPath,
		"-nographic", "-serial", "file:"+serial, "-display", "none", "-monitor", "none",
		"-no-reboot", "-m", "256", "-accel", "tcg")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // a killed test kills its guest
	var qemuOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &qemuOut, &qemuOut
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// Poll the flash image until the boot manager has written its boot
	// options (BootOrder with an entry for the UEFI shell) and
	// MemoryTypeInformation, and has then written nothing for three polls
	// (its burst of writes is over: the VM is not stopped mid-record); QEMU
	// writes pflash through to the file.
	ready := func(b []byte) bool {
		st, err := ParseVarStore(b)
		if err != nil {
			return false // caught mid-write
		}
		vs := st.Vars()
		_, mti := vs.Get("MemoryTypeInformation", mustGUID("4c19049f-4137-4dd3-9c10-8b97a83ffdfa"))
		order, err := vs.BootOrder()
		return mti && err == nil && len(order) > 0
	}
	var last []byte
	quiet := 0
	settled := func() bool {
		select {
		case err := <-exited:
			t.Fatalf("qemu exited early after %v: %v\n%s", time.Since(start), err, qemuOut.String())
		default:
		}
		b, err := os.ReadFile(copyPath)
		if err != nil || !ready(b) || !bytes.Equal(b, last) {
			last, quiet = b, 0
			return false
		}
		quiet++
		return quiet >= 3
	}
	if !testfixtures.Eventually(150*time.Second, 500*time.Millisecond, settled) {
		_ = cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(serial)
		t.Fatalf("OVMF did not write its boot variables within 150 s\nqemu: %s\nserial: %q", qemuOut.String(), log)
	}
	_ = cmd.Process.Kill()
	<-exited
	t.Logf("OVMF wrote its boot variables %v after start", time.Since(start).Round(time.Second))

	after := readFile(t, copyPath)
	st, err := ParseVarStore(after)
	if err != nil {
		t.Fatalf("store after boot does not parse: %v", err)
	}
	vs := st.Vars()
	got, ok := vs.Get("VouchTest", guid)
	if !ok {
		t.Fatal("VouchTest gone after boot: OVMF rejected or reformatted the store")
	}
	if !bytes.Equal(got.Data, payload) || got.Attributes != mine.Attributes {
		t.Errorf("VouchTest after boot = %q %v, want %q %v", got.Data, got.Attributes, payload, mine.Attributes)
	}
	db, err := vs.SignatureLists("db", ImageSecurityDatabaseGUID)
	if err != nil {
		t.Fatalf("db after boot: %v", err)
	}
	if len(db) != 1 || len(db[0].Signatures) != 1 || !bytes.Equal(db[0].Signatures[0].Data, ca2023) {
		t.Errorf("db after boot holds %d lists, want the Microsoft UEFI CA 2023", len(db))
	}
	if v, _ := vs.Get("db", ImageSecurityDatabaseGUID); v.Attributes != NonVolatile|BootServiceAccess|RuntimeAccess|TimeBasedAuthenticatedWriteAccess {
		t.Errorf("db attributes after boot %v", v.Attributes)
	}
	l := st.Layout()
	if !bytes.Equal(after[:l.StoreOffset+storeHeaderSize], orig[:l.StoreOffset+storeHeaderSize]) {
		t.Error("OVMF changed the firmware volume or store header")
	}

	// What did the firmware do? In place: our records untouched at their
	// offsets, its own appended after them. Reclaimed: records moved.
	inPlace := bytes.Equal(after[l.FirstRecord:ourEnd], written[l.FirstRecord:ourEnd])
	var added []string
	for _, v := range vs.All() {
		if _, had := s.Vars().Get(v.Name, v.GUID); !had {
			added = append(added, v.Name)
		}
	}
	sort.Strings(added)
	t.Logf("store after boot: records %d (ours %d), live %d, end 0x%x (ours 0x%x), free %d; our records byte-identical in place: %v; FTW area unchanged: %v; firmware added %v",
		l.Records, ourRecs, l.Live, l.End, ourEnd, st.Free(), inPlace, bytes.Equal(after[l.StoreEnd:], orig[l.StoreEnd:]), added)
	if len(added) == 0 {
		t.Error("firmware added no variables: did it boot?")
	}
}
