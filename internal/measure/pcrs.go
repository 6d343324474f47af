package measure

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Paths of the live host's log and PCRs, relative to the root (securityfs
// and sysfs; Linux 5.12+ exports PCRs per bank).
const (
	LogPath = "sys/kernel/security/tpm0/binary_bios_measurements"
	PCRDir  = "sys/class/tpm/tpm0"
)

// ReadPCRs reads the TPM's PCRs from sysfs under root (the live host: "/")
// for the banks given: sys/class/tpm/tpm0/pcr-BANK/N, upper-case hex. A bank
// the kernel does not export is left out; no bank at all is an error.
func ReadPCRs(root fs.FS, banks []Bank) (PCRs, error) {
	out := PCRs{}
	for _, bk := range banks {
		dir := path.Join(PCRDir, "pcr-"+string(bk))
		if _, err := fs.Stat(root, dir); err != nil {
			continue
		}
		vals := map[int]Digest{}
		for i := 0; i < NumPCRs; i++ {
			b, err := fs.ReadFile(root, path.Join(dir, strconv.Itoa(i)))
			if err != nil {
				return nil, fmt.Errorf("measure: read PCR %d (%s): %w", i, bk, err)
			}
			d, err := hex.DecodeString(strings.TrimSpace(string(b)))
			if err != nil || len(d) != bk.Hash().Size() {
				return nil, fmt.Errorf("measure: %s/%d: %q is not a %s value", dir, i, bytes.TrimSpace(b), bk)
			}
			vals[i] = d
		}
		out[bk] = vals
	}
	if len(out) == 0 {
		return nil, errors.New("measure: the kernel exports no PCR bank of the log under /" + PCRDir + " (no TPM, or Linux older than 5.12)")
	}
	return out, nil
}

// ParsePCRs reads PCR values from text: lines "BANK INDEX HEX" (what
// `for f in pcr-*/*` prints), or tpm2_pcrread's output ("sha256:" then
// "  7 : 0xHEX"). Hex may be upper- or lower-case, with or without 0x.
func ParsePCRs(b []byte, source string) (PCRs, error) {
	out := PCRs{}
	var cur Bank
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, ":") && !strings.Contains(line[:len(line)-1], ":") {
			cur = Bank(strings.ToLower(strings.TrimSuffix(line, ":")))
			if cur.Hash() == 0 {
				return nil, fmt.Errorf("measure: %s: line %d: unknown bank %q", source, n, cur)
			}
			continue
		}
		var bk Bank
		var idx, val string
		if f := strings.Fields(strings.ReplaceAll(line, ":", " ")); len(f) == 3 && Bank(strings.ToLower(f[0])).Hash() != 0 {
			bk, idx, val = Bank(strings.ToLower(f[0])), f[1], f[2]
		} else if len(f) == 2 && cur != "" {
			bk, idx, val = cur, f[0], f[1]
		} else {
			return nil, fmt.Errorf("measure: %s: line %d: want \"BANK INDEX HEX\" or tpm2_pcrread's \"INDEX : 0xHEX\", got %q", source, n, line)
		}
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || i >= NumPCRs {
			return nil, fmt.Errorf("measure: %s: line %d: PCR index %q is not 0-23", source, n, idx)
		}
		d, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(val), "0x"))
		if err != nil || len(d) != bk.Hash().Size() {
			return nil, fmt.Errorf("measure: %s: line %d: %q is not a %s value", source, n, val, bk)
		}
		if out[bk] == nil {
			out[bk] = map[int]Digest{}
		}
		out[bk][i] = d
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("measure: %s: %w", source, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("measure: %s: no PCR values", source)
	}
	return out, nil
}
