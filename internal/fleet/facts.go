// Package fleet is what vouch knows about a fleet: the facts an agent reports
// for its host, split into content-addressed pieces (each distinct firmware
// variable, EFI binary and kernel is a blob stored once by SHA-256; a host's
// firmware state and boot chain are small documents naming those blobs), the
// readiness of each distinct (firmware state, boot chain) evaluated once by
// the secureboot engine and multiplied by the hosts sharing it, fleet-wide
// what-if of a shim package, dbx update, SBAT level or db addition, and
// canary selection by greedy set cover.
package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"
	"unicode"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/store"
)

// Report is what an agent sends about its host. Its JSON is the wire format
// of POST /v1/reports.
type Report struct {
	// HostID, when set, must be the host the credential belongs to.
	HostID   string `json:"hostId,omitempty"`
	Hostname string `json:"hostname"`
	Agent    string `json:"agent,omitempty"`
	// Firmware is nil when the host has no readable UEFI variables.
	Firmware *FirmwareState `json:"firmware,omitempty"`
	// ESP lists the EFI binaries and CSV files under the ESP's EFI/
	// directory; Root the kernels (boot/vmlinuz-*). Contents are blobs.
	ESP  []File `json:"esp"`
	Root []File `json:"root"`

	OS       OS        `json:"os"`
	DMI      DMI       `json:"dmi"`
	Platform string    `json:"platform"`
	Packages []Package `json:"packages"`
	// Lineage and Channel come from the agent's configuration, or from the
	// apt/dnf sources; Label is the administrator's free label.
	Lineage string   `json:"lineage"`
	Channel string   `json:"channel"`
	Label   string   `json:"label"`
	Sources []string `json:"sources,omitempty"`
	Pinned  []string `json:"pinned,omitempty"`
	TPM     TPM      `json:"tpm"`
	// Baseline and Integrity are the host's baseline and package integrity
	// summaries; nil when the agent did not collect them.
	Baseline  *BaselineSummary  `json:"baseline,omitempty"`
	Integrity *IntegritySummary `json:"integrity,omitempty"`
}

// FirmwareState is a host's Secure Boot variables, each by the digest of its
// data.
type FirmwareState struct {
	Vars []Var `json:"vars"`
}

// Var is one UEFI variable.
type Var struct {
	Name       string `json:"name"`
	GUID       string `json:"guid"`
	Attributes uint32 `json:"attributes"`
	Digest     string `json:"digest"`
}

// File is one file of the ESP or the root, by digest.
type File struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// OS is the os-release identity.
type OS struct {
	ID         string `json:"id"`
	VersionID  string `json:"versionId"`
	PrettyName string `json:"prettyName"`
}

// Release is "id-versionid" (debian-12), the release dimension.
func (o OS) Release() string {
	if o.ID == "" {
		return ""
	}
	if o.VersionID == "" {
		return o.ID
	}
	return o.ID + "-" + o.VersionID
}

// DMI is the SMBIOS identity (/sys/class/dmi/id).
type DMI struct {
	SysVendor      string `json:"sysVendor,omitempty"`
	ProductName    string `json:"productName,omitempty"`
	ProductVersion string `json:"productVersion,omitempty"`
	BoardName      string `json:"boardName,omitempty"`
	BIOSVendor     string `json:"biosVendor,omitempty"`
	BIOSVersion    string `json:"biosVersion,omitempty"`
	ChassisAsset   string `json:"chassisAssetTag,omitempty"`
}

// Package is an installed boot package (shim, GRUB, kernel).
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Role    string `json:"role"` // shim, grub, kernel
}

// TPM says whether the host has a TPM and whether disks are sealed to PCR 7.
type TPM struct {
	Present    bool `json:"present"`
	PCR7Sealed bool `json:"pcr7Sealed"`
	// Bindings describe each TPM binding found ("crypttab root: tpm2-device=auto tpm2-pcrs=7").
	Bindings []string `json:"bindings,omitempty"`
}

// Limits of a report: more is refused, not truncated.
const (
	MaxFiles    = 4096
	MaxVars     = 1024
	MaxPackages = 4096
	maxText     = 512
)

// InputError is a report (or question) that cannot be accepted, with the
// reason for the sender.
type InputError struct{ Reason string }

func (e *InputError) Error() string { return "fleet: " + e.Reason }

func inputErr(format string, args ...any) error {
	return &InputError{Reason: fmt.Sprintf(format, args...)}
}

// ValidDigest reports whether d is a lower-case hex SHA-256. A loop, not a
// regular expression: a host's digests are checked when it asks which blobs
// are missing and again in its report, and the expression was a twentieth
// of the server's CPU per host.
func ValidDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Digest is the lower-case hex SHA-256 of b.
func Digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func checkText(field, s string) error {
	if len(s) > maxText {
		return inputErr("%s is longer than %d bytes", field, maxText)
	}
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return inputErr("%s holds a control character or invalid UTF-8", field)
		}
	}
	return nil
}

// Validate checks a report before anything of it is stored.
func (r *Report) Validate() error {
	if strings.TrimSpace(r.Hostname) == "" {
		return inputErr("hostname is empty")
	}
	texts := map[string]string{"hostname": r.Hostname, "agent": r.Agent, "platform": r.Platform, "lineage": r.Lineage,
		"channel": r.Channel, "label": r.Label, "os.id": r.OS.ID, "os.versionId": r.OS.VersionID, "os.prettyName": r.OS.PrettyName,
		"dmi.sysVendor": r.DMI.SysVendor, "dmi.productName": r.DMI.ProductName, "dmi.productVersion": r.DMI.ProductVersion,
		"dmi.boardName": r.DMI.BoardName, "dmi.biosVendor": r.DMI.BIOSVendor, "dmi.biosVersion": r.DMI.BIOSVersion, "dmi.chassisAssetTag": r.DMI.ChassisAsset}
	for f, s := range texts {
		if err := checkText(f, s); err != nil {
			return err
		}
	}
	if err := r.Baseline.validate(); err != nil {
		return err
	}
	if err := r.Integrity.validate(); err != nil {
		return err
	}
	if len(r.ESP)+len(r.Root) > MaxFiles {
		return inputErr("%d files: at most %d", len(r.ESP)+len(r.Root), MaxFiles)
	}
	for _, set := range []struct {
		name  string
		files []File
	}{{"esp", r.ESP}, {"root", r.Root}} {
		seen := make(map[string]bool, len(set.files))
		for i, f := range set.files {
			// Formatted only for an error, not for every entry of every report.
			where := func() string { return fmtIndex(set.name, i) }
			if f.Path == "" || path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || strings.HasPrefix(f.Path, "../") || f.Path == ".." || f.Path == "." {
				return inputErr("%s.path %q is not a clean relative path", where(), f.Path)
			}
			if err := checkText("path", f.Path); err != nil {
				return inputErr("%s.%s", where(), err.(*InputError).Reason)
			}
			if set.name == "root" && !strings.HasPrefix(f.Path, "boot/vmlinuz") {
				return inputErr("%s.path %q: root files are kernels (boot/vmlinuz-*)", where(), f.Path)
			}
			lower := strings.ToLower(f.Path)
			if seen[lower] {
				return inputErr("%s.path %q is listed twice", where(), f.Path)
			}
			seen[lower] = true
			if !ValidDigest(f.Digest) {
				return inputErr("%s.digest %q is not a lower-case hex SHA-256", where(), f.Digest)
			}
			if f.Size < 0 {
				return inputErr("%s.size is negative", where())
			}
		}
	}
	if fw := r.Firmware; fw != nil {
		if len(fw.Vars) > MaxVars {
			return inputErr("firmware: %d variables: at most %d", len(fw.Vars), MaxVars)
		}
		seen := make(map[string]bool, len(fw.Vars))
		for i, v := range fw.Vars {
			where := func() string { return fmtIndex("firmware.vars", i) }
			if v.Name == "" || len(v.Name) > 128 {
				return inputErr("%s.name is empty or too long", where())
			}
			if err := checkText("name", v.Name); err != nil {
				return inputErr("%s.%s", where(), err.(*InputError).Reason)
			}
			g, err := efi.ParseGUID(v.GUID)
			if err != nil {
				return inputErr("%s.guid %q is not a GUID", where(), v.GUID)
			}
			k := v.Name + "-" + g.String()
			if seen[k] {
				return inputErr("%s: %s is listed twice", where(), k)
			}
			seen[k] = true
			if !ValidDigest(v.Digest) {
				return inputErr("%s.digest %q is not a lower-case hex SHA-256", where(), v.Digest)
			}
		}
	}
	if len(r.Packages) > MaxPackages {
		return inputErr("%d packages: at most %d", len(r.Packages), MaxPackages)
	}
	for i, p := range r.Packages {
		for f, s := range map[string]string{"name": p.Name, "version": p.Version, "role": p.Role} {
			if err := checkText(fmt.Sprintf("packages[%d].%s", i, f), s); err != nil {
				return err
			}
		}
	}
	for i, b := range r.TPM.Bindings {
		if err := checkText(fmt.Sprintf("tpm.bindings[%d]", i), b); err != nil {
			return err
		}
	}
	for i, s := range append(append([]string(nil), r.Sources...), r.Pinned...) {
		if err := checkText(fmt.Sprintf("sources/pinned[%d]", i), s); err != nil {
			return err
		}
	}
	return nil
}

// Needs lists the blob digests the report references, each once.
func (r *Report) Needs() []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	if r.Firmware != nil {
		for _, v := range r.Firmware.Vars {
			add(v.Digest)
		}
	}
	for _, f := range r.ESP {
		add(f.Digest)
	}
	for _, f := range r.Root {
		add(f.Digest)
	}
	return out
}

// bootChain is the document a host's boot chain digest names.
type bootChain struct {
	ESP  []File `json:"esp"`
	Root []File `json:"root"`
}

// StateDocs are the canonical firmware-state and boot-chain documents of a
// report, and their digests ("" for the firmware state of a host without
// UEFI variables).
func (r *Report) StateDocs() (fwDigest string, fwDoc []byte, chainDigest string, chainDoc []byte) {
	if r.Firmware != nil {
		vars := append([]Var(nil), r.Firmware.Vars...)
		for i := range vars {
			if g, err := efi.ParseGUID(vars[i].GUID); err == nil {
				vars[i].GUID = g.String()
			}
		}
		sort.Slice(vars, func(i, j int) bool {
			if vars[i].Name != vars[j].Name {
				return vars[i].Name < vars[j].Name
			}
			return vars[i].GUID < vars[j].GUID
		})
		fwDoc, _ = json.Marshal(FirmwareState{Vars: vars})
		fwDigest = Digest(fwDoc)
	}
	sorted := func(fs []File) []File {
		out := append([]File{}, fs...)
		sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
		return out
	}
	chainDoc, _ = json.Marshal(bootChain{ESP: sorted(r.ESP), Root: sorted(r.Root)})
	return fwDigest, fwDoc, Digest(chainDoc), chainDoc
}

// Platform derives the platform dimension from DMI (no network calls): the
// cloud or hypervisor when DMI names one, "physical" otherwise.
func Platform(d DMI, hypervisor bool) string {
	v := strings.ToLower(d.SysVendor + " " + d.ProductName + " " + d.BIOSVendor + " " + d.BIOSVersion + " " + d.BoardName)
	switch {
	case strings.Contains(v, "amazon ec2") || strings.Contains(v, "amazon"):
		return "aws"
	case strings.Contains(v, "google compute engine") || strings.Contains(v, "google"):
		return "gcp"
	case d.ChassisAsset == "7783-7084-3265-9085-8269-3286-77":
		return "azure" // Azure's documented chassis asset tag
	case strings.Contains(v, "microsoft corporation") && strings.Contains(v, "virtual machine"):
		return "hyperv"
	case strings.Contains(v, "openstack"):
		return "openstack"
	case strings.Contains(v, "vmware"):
		return "vmware"
	case strings.Contains(v, "virtualbox") || strings.Contains(v, "innotek"):
		return "virtualbox"
	case strings.Contains(v, "xen"):
		return "xen"
	case strings.Contains(v, "qemu") || strings.Contains(v, "kvm") || strings.Contains(v, "bochs"):
		return "qemu"
	case hypervisor:
		return "vm"
	case strings.TrimSpace(v) == "":
		return ""
	}
	return "physical"
}

// Dims are the dimension values of a report.
func (r *Report) Dims() map[string]string {
	model := strings.TrimSpace(strings.TrimSpace(r.DMI.SysVendor) + " " + strings.TrimSpace(r.DMI.ProductName))
	return map[string]string{
		store.DimPlatform: r.Platform,
		store.DimModel:    model,
		store.DimFirmware: strings.TrimSpace(r.DMI.BIOSVendor + " " + r.DMI.BIOSVersion),
		store.DimRelease:  r.OS.Release(),
		store.DimLineage:  r.Lineage,
		store.DimChannel:  r.Channel,
		store.DimLabel:    r.Label,
	}
}

func fmtIndex(name string, i int) string { return fmt.Sprintf("%s[%d]", name, i) }
