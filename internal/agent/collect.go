// Package agent collects a host's facts with the engine (target, efi,
// secureboot, pkgdb, osrelease) and reports them to a vouch server: it enrols
// once and keeps its credential, uploads only the blobs the server lacks,
// sends only what changed (a heartbeat otherwise), spools the report to disk
// while the server is away, and retries with exponential backoff and jitter.
// --root/--efivars collect for an offline host (a mounted disk, an image, an
// exported variable dump).
package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/target"
)

// Source says what to collect from.
type Source struct {
	// Root is a root directory or disk image; "" is the running system.
	Root string
	// EFIVars is a directory of variables (efivarfs or exported Name-GUID
	// files); "" is the running system's efivarfs (none for --root).
	EFIVars string
	// Hostname overrides the collected one.
	Hostname string
	// Config is the administrator's settings (label, lineage, channel).
	Config Config
	// Agent is the agent's version string.
	Agent string
	// Summaries also collects the baseline and package-integrity
	// summaries (summarize): it reads every packaged file.
	Summaries bool
}

// Config is the agent's configuration file: KEY=VALUE lines (label,
// lineage, channel); # starts a comment.
type Config struct {
	Label, Lineage, Channel string
}

// ReadConfig reads a configuration file; a missing file is an empty config.
func ReadConfig(file string) (Config, error) {
	var c Config
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("agent: %w", err)
	}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return c, fmt.Errorf("agent: %s:%d: want KEY=VALUE", file, i+1)
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch strings.TrimSpace(k) {
		case "label":
			c.Label = v
		case "lineage":
			c.Lineage = v
		case "channel":
			c.Channel = v
		default:
			return c, fmt.Errorf("agent: %s:%d: unknown key %q (want label, lineage or channel)", file, i+1, k)
		}
	}
	return c, nil
}

// Collected is a report and the blobs it names.
type Collected struct {
	Report *fleet.Report
	Blobs  map[string]Blob // by digest
}

// Blob is one piece of content the report names.
type Blob struct {
	Kind string // "var" or "file"
	Data []byte
}

// maxFile bounds one ESP file or kernel.
const maxFile = 64 << 20

// Collect gathers the host's facts.
func Collect(ctx context.Context, src Source) (*Collected, error) {
	live := src.Root == "" || src.Root == "/"
	p := src.Root
	if live {
		p = "/"
	}
	t, err := target.Open(p, target.Options{Live: live})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer t.Close()
	c := &Collected{Report: &fleet.Report{Agent: src.Agent, ESP: []fleet.File{}, Root: []fleet.File{}, Packages: []fleet.Package{}}, Blobs: map[string]Blob{}}
	r := c.Report

	var vars fs.FS
	switch {
	case src.EFIVars != "":
		info, err := os.Stat(src.EFIVars)
		if err != nil || !info.IsDir() {
			return nil, fmt.Errorf("agent: %s: not a directory of firmware variables", src.EFIVars)
		}
		vars = os.DirFS(src.EFIVars)
	case live:
		vars = t.EFIVars
	}
	if vars != nil {
		vs, err := efi.ReadVarDir(vars, "efivars")
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		r.Firmware = &fleet.FirmwareState{Vars: []fleet.Var{}}
		for _, v := range vs.All() {
			if !secureBootVar(v.Name) {
				continue
			}
			d := c.add("var", v.Data)
			r.Firmware.Vars = append(r.Firmware.Vars, fleet.Var{Name: v.Name, GUID: v.GUID.String(), Attributes: uint32(v.Attributes), Digest: d})
		}
	}
	if t.ESP != nil {
		err := fs.WalkDir(t.ESP, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable directories are skipped, as the engine does
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			ext := strings.ToLower(path.Ext(p))
			if !strings.HasPrefix(strings.ToUpper(p), "EFI/") || (ext != ".efi" && ext != ".csv") {
				return nil
			}
			b, err := readFile(t.ESP, p)
			if err != nil {
				return nil
			}
			r.ESP = append(r.ESP, fleet.File{Path: p, Digest: c.add("file", b), Size: int64(len(b))})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("agent: ESP: %w", err)
		}
	}
	if t.Root != nil {
		root := fs.FS(t.Root)
		if ents, err := fs.ReadDir(root, "boot"); err == nil {
			for _, e := range ents {
				if !strings.HasPrefix(e.Name(), "vmlinuz") || e.IsDir() {
					continue
				}
				b, err := readFile(root, "boot/"+e.Name())
				if err != nil {
					continue
				}
				r.Root = append(r.Root, fleet.File{Path: "boot/" + e.Name(), Digest: c.add("file", b), Size: int64(len(b))})
			}
		}
		collectRoot(ctx, root, r, live)
		if src.Summaries {
			if err := summarize(ctx, t, r); err != nil {
				return nil, fmt.Errorf("agent: summaries: %w", err)
			}
		}
	}
	r.Hostname = src.Hostname
	if r.Hostname == "" && live {
		r.Hostname, _ = os.Hostname()
	}
	if r.Hostname == "" && t.Root != nil {
		if b, err := fs.ReadFile(t.Root, "etc/hostname"); err == nil {
			r.Hostname = strings.TrimSpace(string(b))
		}
	}
	if r.Hostname == "" {
		return nil, fmt.Errorf("agent: no hostname found (give --hostname)")
	}
	if src.Config.Label != "" {
		r.Label = src.Config.Label
	}
	if src.Config.Lineage != "" {
		r.Lineage = src.Config.Lineage
	}
	if src.Config.Channel != "" {
		r.Channel = src.Config.Channel
	}
	sort.Slice(r.ESP, func(i, j int) bool { return r.ESP[i].Path < r.ESP[j].Path })
	return c, nil
}

func (c *Collected) add(kind string, b []byte) string {
	d := fleet.Digest(b)
	c.Blobs[d] = Blob{Kind: kind, Data: b}
	return d
}

func readFile(fsys fs.FS, p string) ([]byte, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxFile {
		return nil, fmt.Errorf("agent: %s is larger than %d bytes", p, maxFile)
	}
	return b, nil
}

var bootVar = regexp.MustCompile(`^Boot[0-9A-Fa-f]{4}$`)

// secureBootVar reports whether a variable is part of the Secure Boot state
// the engine reads (vendor variables of the firmware are left out: they
// would make every host's state distinct for nothing).
func secureBootVar(name string) bool {
	switch name {
	case "PK", "KEK", "db", "dbx", "PKDefault", "KEKDefault", "dbDefault", "dbxDefault",
		"SecureBoot", "SetupMode", "AuditMode", "DeployedMode", "SecureBootEnable", "BootOrder",
		"MokList", "MokListRT", "MokListX", "MokListXRT", "MokDBState", "MokIgnoreDB", "MokSBState", "MokSBStateRT",
		"SbatLevel", "SbatLevelRT":
		return true
	}
	return bootVar.MatchString(name)
}

// collectRoot reads os-release, DMI, boot packages, sources and TPM bindings.
func collectRoot(ctx context.Context, root fs.FS, r *fleet.Report, live bool) {
	if info, err := osrelease.Read(root); err == nil {
		r.OS = fleet.OS{ID: info.ID, VersionID: info.VersionID, PrettyName: info.PrettyName}
		if r.Lineage == "" && info.ID != "" {
			r.Lineage = info.ID
			if info.ImageID != "" {
				r.Lineage = info.ImageID
			}
			if info.ImageVer != "" {
				r.Lineage += "@" + info.ImageVer
			}
		}
	}
	var dmiFS fs.FS = root
	dmiDir := "sys/class/dmi/id"
	if live {
		dmiFS, dmiDir = os.DirFS("/sys/class/dmi/id"), "."
	}
	rd := func(name string) string {
		b, err := fs.ReadFile(dmiFS, path.Join(dmiDir, name))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	r.DMI = fleet.DMI{SysVendor: rd("sys_vendor"), ProductName: rd("product_name"), ProductVersion: rd("product_version"),
		BoardName: rd("board_name"), BIOSVendor: rd("bios_vendor"), BIOSVersion: rd("bios_version"), ChassisAsset: rd("chassis_asset_tag")}
	hyper := false
	if live {
		if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
			hyper = bytes.Contains(b, []byte(" hypervisor"))
		}
	}
	r.Platform = fleet.Platform(r.DMI, hyper)
	if inv, err := pkgdb.Read(ctx, root, pkgdb.Options{}); err == nil {
		for _, p := range inv.Packages {
			if role := bootRole(p.Name); role != "" {
				r.Packages = append(r.Packages, fleet.Package{Name: p.Name, Version: p.Version, Role: role})
			}
		}
	}
	r.Sources, r.Channel = sources(root)
	r.Pinned = pinned(root)
	r.TPM = tpm(root, live)
}

// bootRole says whether a package installs a boot stage.
func bootRole(name string) string {
	switch {
	case strings.HasPrefix(name, "shim"):
		return "shim"
	case strings.HasPrefix(name, "grub-efi") && strings.HasSuffix(name, "-signed"), strings.HasPrefix(name, "grub2-efi"):
		return "grub"
	case strings.HasPrefix(name, "linux-image-") && !strings.Contains(name, "-dbg"), name == "kernel-core", name == "kernel":
		return "kernel"
	}
	return ""
}

// sources reads apt's and dnf's sources: the list ("URI suite", or dnf repo
// IDs) and the channel (the suites or enabled repos, sorted and joined).
func sources(root fs.FS) ([]string, string) {
	var list, suites []string
	seen := map[string]bool{}
	addSuite := func(s string) {
		if !seen[s] {
			seen[s] = true
			suites = append(suites, s)
		}
	}
	files := []string{"etc/apt/sources.list"}
	if m, err := fs.Glob(root, "etc/apt/sources.list.d/*"); err == nil {
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := fs.ReadFile(root, f)
		if err != nil {
			continue
		}
		if strings.HasSuffix(f, ".sources") { // deb822
			var uris, sts []string
			for _, line := range strings.Split(string(b)+"\n\n", "\n") {
				k, v, _ := strings.Cut(line, ":")
				switch strings.TrimSpace(k) {
				case "URIs":
					uris = strings.Fields(v)
				case "Suites":
					sts = strings.Fields(v)
				case "":
					for _, s := range sts {
						addSuite(s)
						for _, u := range uris {
							list = append(list, u+" "+s)
						}
					}
					uris, sts = nil, nil
				}
			}
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 || fields[0] != "deb" {
				continue
			}
			i := 1
			if strings.HasPrefix(fields[1], "[") { // options
				for i < len(fields) && !strings.HasSuffix(fields[i], "]") {
					i++
				}
				i++
			}
			if i+1 < len(fields) {
				list = append(list, fields[i]+" "+fields[i+1])
				addSuite(fields[i+1])
			}
		}
	}
	if m, err := fs.Glob(root, "etc/yum.repos.d/*.repo"); err == nil {
		for _, f := range m {
			b, _ := fs.ReadFile(root, f)
			id, enabled := "", true
			flush := func() {
				if id != "" && enabled {
					list = append(list, "dnf "+id)
					addSuite(id)
				}
			}
			for _, line := range strings.Split(string(b), "\n") {
				line = strings.TrimSpace(line)
				if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
					flush()
					id, enabled = strings.Trim(line, "[]"), true
				} else if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == "enabled" {
					enabled = strings.TrimSpace(v) != "0"
				}
			}
			flush()
		}
	}
	sort.Strings(suites)
	return list, strings.Join(suites, ",")
}

// pinned lists apt preferences pinning boot packages.
func pinned(root fs.FS) []string {
	files := []string{"etc/apt/preferences"}
	if m, err := fs.Glob(root, "etc/apt/preferences.d/*"); err == nil {
		files = append(files, m...)
	}
	var out []string
	for _, f := range files {
		b, err := fs.ReadFile(root, f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(k) != "Package" {
				continue
			}
			for _, name := range strings.Fields(v) {
				if bootRole(strings.Trim(name, "*")) != "" {
					out = append(out, name+" ("+f+")")
				}
			}
		}
	}
	return out
}

// tpm reads whether a TPM is present and which disks are bound to PCR 7:
// crypttab entries with tpm2-device= (systemd-cryptenroll; tpm2-pcrs= names
// the PCRs, PCR 7 when absent, systemd's default), and clevis (the
// clevis-luks-askpass unit or clevis's dracut/initramfs hook installed with
// a crypttab entry: its tpm2 pin binds PCRs named at bind time; it is
// reported, not assumed sealed to PCR 7).
func tpm(root fs.FS, live bool) fleet.TPM {
	var t fleet.TPM
	if live {
		_, err := os.Stat("/sys/class/tpm/tpm0")
		t.Present = err == nil
	} else if _, err := fs.Stat(root, "sys/class/tpm/tpm0"); err == nil {
		t.Present = true
	}
	b, err := fs.ReadFile(root, "etc/crypttab")
	if err != nil {
		return t
	}
	entries := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		entries++
		if len(f) < 4 {
			continue
		}
		opts := strings.Split(f[3], ",")
		dev, pcrs := "", ""
		for _, o := range opts {
			if v, ok := strings.CutPrefix(o, "tpm2-device="); ok {
				dev = v
			}
			if v, ok := strings.CutPrefix(o, "tpm2-pcrs="); ok {
				pcrs = v
			}
		}
		if dev == "" {
			continue
		}
		if pcrs == "" {
			pcrs = "7"
		}
		desc := fmt.Sprintf("crypttab %s: tpm2-device=%s tpm2-pcrs=%s", f[0], dev, pcrs)
		t.Bindings = append(t.Bindings, desc)
		for _, p := range strings.FieldsFunc(pcrs, func(r rune) bool { return r == '+' || r == ',' }) {
			if p == "7" || p == "secure-boot-policy" {
				t.PCR7Sealed = true
			}
		}
	}
	if entries > 0 {
		for _, p := range []string{"usr/share/initramfs-tools/hooks/clevis", "usr/lib/dracut/modules.d/60clevis", "usr/bin/clevis-luks-bind"} {
			if _, err := fs.Stat(root, p); err == nil {
				t.Bindings = append(t.Bindings, "clevis installed with crypttab entries ("+p+"): tpm2 pin PCRs set at bind time")
				break
			}
		}
	}
	return t
}
