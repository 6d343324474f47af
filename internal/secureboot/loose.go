package secureboot

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
)

// The binaries of an ESP that no boot path reaches (MokManager, fallback, a
// spare loader), judged before and after a revocation update as their
// loader would judge them, and the images a dbx update's certificate entries
// are looked up in.

// looseBinary is an EFI binary of the ESP no boot path reaches.
type looseBinary struct {
	path, role string
	img        *authenticode.Image
	err        error
	loader     *authenticode.Image // the shim beside it, nil: the firmware
}

// looseBinaries lists the .efi files of the ESP's EFI directory that no
// boot path reaches: MokManager, fallback beside the vendor shim, a spare
// GRUB. Each is judged as its loader would: the shim in the same directory
// (shim starts MokManager and its second stage from its own directory), else
// the firmware.
func looseBinaries(esp fs.FS, paths []BootPath) []looseBinary {
	if esp == nil {
		return nil
	}
	onPath := map[string]bool{}
	for _, bp := range paths {
		for _, st := range bp.Stages {
			if st.FS == "esp" {
				onPath[strings.ToLower(st.Path)] = true
			}
		}
	}
	efiDir, ok := resolveDirFold(esp, "EFI")
	if !ok {
		return nil
	}
	var files []string
	_ = fs.WalkDir(esp, efiDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable directories hold nothing we can judge
		}
		if d.IsDir() && strings.Count(p, "/") > 3 {
			return fs.SkipDir
		}
		if !d.IsDir() && strings.EqualFold(path.Ext(p), ".efi") && !onPath[strings.ToLower(p)] {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	var out []looseBinary
	shims := map[string]*authenticode.Image{} // directory → shim
	for _, p := range files {
		x := looseBinary{path: p}
		b, err := fs.ReadFile(esp, p)
		if err == nil {
			x.img, err = authenticode.Parse(b)
		}
		x.err = err
		x.role = RoleLoader
		if x.img != nil {
			x.role = roleOf(p, x.img)
		}
		if strings.HasPrefix(strings.ToLower(path.Base(p)), "mm") {
			x.role = "mokmanager"
		}
		out = append(out, x)
	}
	// Shims, on a path or not, by directory.
	for _, bp := range paths {
		for _, st := range bp.Stages {
			if st.Role == RoleShim && st.img != nil && st.FS == "esp" {
				dir := strings.ToLower(path.Dir(st.Path))
				if shims[dir] == nil {
					shims[dir] = st.img
				}
			}
		}
	}
	for _, x := range out {
		if x.role == RoleShim && x.img != nil {
			dir := strings.ToLower(path.Dir(x.path))
			if shims[dir] == nil {
				shims[dir] = x.img
			}
		}
	}
	for i := range out {
		if out[i].role != RoleShim {
			out[i].loader = shims[strings.ToLower(path.Dir(out[i].path))]
		}
	}
	return out
}

// judgeLoose judges a binary no boot path reaches, as a stage.
func judgeLoose(x looseBinary, fw *Firmware, o Options) Stage {
	st := Stage{Role: x.role, Path: x.path, FS: "esp", LoadedBy: ByFirmware, img: x.img}
	if x.loader != nil {
		st.LoadedBy = ByShim
	}
	if x.err != nil {
		st.Error = x.err.Error()
		return st
	}
	var d Decision
	if x.loader != nil {
		d = ShimVerifyWith(x.loader, fw, x.img, ShimOptions{SBATPolicy: o.SBATPolicy})
	} else {
		d = fw.Verify(x.img)
	}
	st.Decision = &d
	if x.role == RoleShim && fw.Enforcing() && !fw.ShimValidationDisabled {
		sc := ShimSelfCheck(x.img, fw, o.SBATPolicy)
		st.SelfCheck = &sc
	}
	return st
}

func stageImpact(b, a Stage, onPath bool) BinaryImpact {
	bi := BinaryImpact{Path: b.Path, FS: b.FS, Role: b.Role, LoadedBy: b.LoadedBy, OnBootPath: onPath, Before: stageState(b), After: stageState(a)}
	if bi.Role == RoleLoader && strings.HasPrefix(strings.ToLower(path.Base(b.Path)), "mm") {
		bi.Role = "mokmanager"
	}
	if bi.After == "refused" || bi.After == "error" {
		bi.Reason = strings.TrimPrefix(stageFailure(a), "does not boot: ")
	}
	return bi
}

func stageState(s Stage) string {
	if s.Error != "" && !s.Absent {
		return "error"
	}
	switch s.allowed() {
	case 1:
		return "allowed"
	case 0:
		return "refused"
	}
	return "unknown"
}

// allImages lists every parsed binary of the target.
func allImages(paths []BootPath, extras []looseBinary) []*authenticode.Image {
	var out []*authenticode.Image
	for _, bp := range paths {
		for _, st := range append(append([]Stage(nil), bp.Stages...), bp.Kernels...) {
			if st.img != nil {
				out = append(out, st.img)
			}
		}
	}
	for _, x := range extras {
		if x.img != nil {
			out = append(out, x.img)
		}
	}
	return out
}

func findCertByThumbprint(images []*authenticode.Image, thumbprint string) []byte {
	for _, img := range images {
		for _, s := range img.Signatures() {
			for _, c := range s.Certificates {
				sum := sha1.Sum(c.Raw)
				if hex.EncodeToString(sum[:]) == thumbprint {
					return c.Raw
				}
			}
		}
	}
	return nil
}

// issuedUnder warns when a binary carries a certificate issued by a CA of
// that name (the JSON gives "CN = Name"): without the CA's own certificate
// vouch cannot tell whether the revoked certificate is that issuer.
func issuedUnder(images []*authenticode.Image, subject string) string {
	cn := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(subject), "CN ="))
	cn = strings.TrimSpace(strings.TrimPrefix(cn, "CN="))
	if cn == "" {
		return ""
	}
	for _, img := range images {
		for _, s := range topLevel(img.Signatures()) {
			for _, c := range s.Chain {
				if c.Issuer.CommonName == cn {
					return fmt.Sprintf("; but a signature on the target chains to an issuer named %q: put the certificate file beside the list to judge it", cn)
				}
			}
		}
	}
	return ""
}
