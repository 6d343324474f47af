package vm

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vouch-dev/vouch/internal/container"
)

// imageFormat returns the image's absolute path and its QEMU format name,
// detected from the content (internal/container), never from the file name.
func imageFormat(path string) (string, string, error) {
	if path == "" {
		return "", "", &Error{Op: "image", Reason: "no image given"}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", "", &Error{Op: "image", Reason: path, Err: err}
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", "", &Error{Op: "image", Reason: "cannot open " + path, Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", "", &Error{Op: "image", Reason: "cannot stat " + path, Err: err}
	}
	if st.IsDir() {
		return "", "", &Error{Op: "image", Reason: path + " is a directory, not a disk image"}
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", "", &Error{Op: "image", Reason: "cannot read " + path, Err: err}
	}
	fmtName, err := container.Detect(f, size)
	if err != nil {
		return "", "", &Error{Op: "image", Reason: path, Err: err}
	}
	switch fmtName {
	case container.FormatRaw:
		return abs, "raw", nil
	case container.FormatQCOW2:
		return abs, "qcow2", nil
	case container.FormatVHDFixed, container.FormatVHDDynamic:
		return abs, "vpc", nil
	case container.FormatVHDX:
		return abs, "vhdx", nil
	}
	return "", "", &Error{Op: "image", Reason: fmt.Sprintf("%s: format %s cannot be booted", path, fmtName)}
}

// firmwareFiles returns the firmware code and variable-store template.
func firmwareFiles(fw Firmware) (code, vars string, err error) {
	if fw.Boot == BIOS {
		if fw.SecureBoot {
			return "", "", &Error{Op: "firmware", Reason: "Secure Boot needs UEFI firmware, not BIOS"}
		}
		return "", "", nil
	}
	if fw.Boot != UEFI {
		return "", "", &Error{Op: "firmware", Reason: fmt.Sprintf("unknown boot mode %d", fw.Boot)}
	}
	code, vars = fw.Code, fw.Vars
	if code == "" {
		code = filepath.Join(OVMFDir, "OVMF_CODE_4M.fd")
		if fw.SecureBoot {
			code = filepath.Join(OVMFDir, "OVMF_CODE_4M.secboot.fd")
		}
	}
	if vars == "" {
		vars = filepath.Join(OVMFDir, "OVMF_VARS_4M.fd")
		if fw.SecureBoot {
			vars = filepath.Join(OVMFDir, "OVMF_VARS_4M.ms.fd")
		}
	}
	for _, f := range []string{code, vars} {
		st, err := os.Stat(f)
		if err != nil {
			hint := ""
			if strings.HasPrefix(f, OVMFDir) {
				hint = " (install the Debian package ovmf)"
			}
			return "", "", &Error{Op: "firmware", Reason: "missing firmware file " + f + hint, Err: err}
		}
		if !st.Mode().IsRegular() || st.Size() == 0 {
			return "", "", &Error{Op: "firmware", Reason: f + " is not a firmware image (not a regular, non-empty file)"}
		}
	}
	cs, _ := os.Stat(code)
	vs, _ := os.Stat(vars)
	if sum := cs.Size() + vs.Size(); sum != 4<<20 && sum != 2<<20 {
		// OVMF's flash device is 4 MiB (FD_SIZE_4MB: 3.5 MiB code + 528 KiB
		// vars) or 2 MiB (1.875 MiB + 128 KiB): the two pflash units must add
		// up to it, or the firmware finds no variable store where it expects.
		return "", "", &Error{Op: "firmware", Reason: fmt.Sprintf("variable store %s (%d bytes) does not fit firmware %s (%d bytes)", vars, vs.Size(), code, cs.Size())}
	}
	return code, vars, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// readTail returns the last n lines of a small text file, joined by "; ".
func readTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "; "))
}

func firstLine(text, sub string) string {
	for _, l := range strings.Split(text, "; ") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return text
}
