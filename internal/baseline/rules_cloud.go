package baseline

import (
	"debug/elf"
	"fmt"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// cloudRules are the cloud image requirements that can be checked offline
// (Azure's Linux image certification, AWS and GCE image guidelines).
func cloudRules() []Rule {
	azure := []string{"Azure: Prepare a Linux image (generalize)"}
	aws := []string{"AWS: Shared AMI security guidelines"}
	gce := []string{"GCE: Building custom images (operating system requirements)"}
	both := append(append([]string{}, azure...), aws...)
	return []Rule{
		{ID: "cloud-image.no-ssh-host-keys", Title: "No SSH host keys are baked into the image", Severity: high, References: append(both, gce...),
			Rationale: "Every VM from an image with baked host keys shares them, so any one can impersonate the others.",
			Control:   fileAbsent("Delete /etc/ssh/ssh_host_* before capturing the image; sshd or cloud-init generates them at first boot. vouch does not delete them because its backups would keep the keys in the image.", "etc/ssh/ssh_host_*")},
		{ID: "cloud-image.no-passwords", Title: "No account has a password", Severity: high, References: both,
			Rationale: "A password in an image is shared by every VM made from it; clouds inject keys instead.",
			Control:   custom("Lock every account (passwd -l) before capturing the image.", noPasswords)},
		{ID: "cloud-image.no-authorized-keys", Title: "No authorized_keys are baked into the image", Severity: high, References: both,
			Rationale: "A baked key gives its owner access to every VM from the image.",
			Control:   custom("Delete /root/.ssh/authorized_keys and /home/*/.ssh/authorized_keys; the cloud injects keys at provisioning.", noAuthorizedKeys)},
		{ID: "cloud-image.sshd-permit-root-login", Title: "sshd refuses root logins", Severity: high, References: append(aws, gce...),
			Rationale: "Clouds expect root login over SSH to be off.",
			Control:   sshdOption("PermitRootLogin", sshdIs("no"), "no", "no")},
		{ID: "cloud-image.sshd-password-authentication", Title: "sshd refuses password authentication", Severity: high, References: append(aws, gce...),
			Rationale: "Key-based SSH only: a password login on a public address is guessed.",
			Control:   sshdOption("PasswordAuthentication", sshdIs("no"), "no", "no")},
		{ID: "cloud-image.sshd-client-alive", Title: "sshd ClientAliveInterval is 30 to 235 seconds (Azure)", Severity: low, References: azure,
			Rationale: "Azure's load balancer drops idle TCP connections after 4 minutes; keepalives below that keep sessions up.",
			Control:   sshdOption("ClientAliveInterval", sshdBetween(30, 235), "30 to 235 (180 recommended)", "180")},
		{ID: "cloud-image.sshd-enabled", Title: "sshd starts at boot", Severity: medium, References: azure,
			Rationale: "Without sshd the VM cannot be reached.",
			Control:   gatedSSH(unitEnabled("ssh.service", "sshd.service", "ssh.socket"))},
		{ID: "cloud-image.serial-console", Title: "The kernel logs to the serial console (console=ttyS0)", Severity: medium, References: azure,
			Rationale: "The cloud's boot diagnostics and serial console read ttyS0.",
			Control:   serialConsole()},
		{ID: "cloud-image.no-swap-fstab", Title: "No swap is configured in /etc/fstab", Severity: medium, References: azure,
			Rationale: "Swap on the OS disk is slow and billed; the agent puts swap on the resource disk.",
			Control:   custom("Remove swap lines from /etc/fstab (use the provisioning agent's resource-disk swap).", noSwapFstab)},
		{ID: "cloud-image.no-swap-partition", Title: "The OS disk has no swap partition", Severity: medium, References: azure,
			Rationale: "Swap on the OS disk is slow and billed.",
			Control:   custom("Rebuild the image without a swap partition.", noSwapPartition)},
		{ID: "cloud-image.provisioning-agent", Title: "A provisioning agent is installed (cloud-init, walinuxagent or azure-init)", Severity: high, References: azure,
			Rationale: "The agent applies the VM's user, keys, host name and network at first boot.",
			Control:   packageInstalled("cloud-init", "walinuxagent", "azure-init")},
		{ID: "cloud-image.empty-shell-history", Title: "Shell histories are empty", Severity: medium, References: azure,
			Rationale: "Histories of the image build can hold secrets and are shared by every VM.",
			Control:   custom("Truncate /root/.bash_history and /home/*/.bash_history before capturing the image.", emptyHistory)},
		{ID: "cloud-image.no-machine-id", Title: "No machine-id is baked into the image", Severity: medium, References: azure,
			Rationale: "Every VM from an image with a fixed machine-id shares it (DHCP client IDs, journald, systemd-networkd).",
			Control:   machineID()},
		{ID: "cloud-image.dhcp-networking", Title: "The primary network interface is configured by DHCP", Severity: high, References: azure,
			Rationale: "Cloud VMs get their address by DHCP; a static configuration leaves the VM unreachable.",
			Control:   custom("Configure DHCP (systemd-networkd .network with DHCP=yes, netplan dhcp4: true, ifupdown inet dhcp, or NetworkManager).", dhcpNetworking)},
		{ID: "cloud-image.time-sync", Title: "Time synchronisation is configured", Severity: medium, References: gce,
			Rationale: "Clouds expect NTP (their metadata server or PTP) to keep the clock.",
			Control:   timeSyncSingle()},
		{ID: "cloud-image.64-bit", Title: "The system is 64-bit", Severity: high, References: both,
			Rationale: "Clouds run 64-bit images only.",
			Control:   custom("Rebuild the image for x86-64 or arm64.", sixtyFour)},
	}
}

func noPasswords(s *State) check.Result {
	sh, ok, err := s.shadow()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/shadow")
	}
	var bad []string
	for _, e := range sh {
		if e.Legacy || e.Bad {
			continue
		}
		switch {
		case e.Pass == "":
			bad = append(bad, e.Name+" (empty: no password needed)")
		case strings.HasPrefix(e.Pass, "!") || strings.HasPrefix(e.Pass, "*"):
		default:
			bad = append(bad, e.Name+" (password hash)")
		}
	}
	if len(bad) > 0 {
		return fail("accounts that can log in with a password: "+strings.Join(bad, ", "), bad...)
	}
	return pass(fmt.Sprintf("all %d accounts are locked (! or *)", len(sh)))
}

func (s *State) homes() []string {
	out := []string{"root"}
	ents, err := s.Root.ReadDir("home")
	if err == nil {
		for _, e := range ents {
			if e.IsDir() {
				out = append(out, "home/"+e.Name())
			}
		}
	}
	return out
}

func noAuthorizedKeys(s *State) check.Result {
	var bad []string
	for _, h := range s.homes() {
		for _, f := range []string{".ssh/authorized_keys", ".ssh/authorized_keys2"} {
			p := h + "/" + f
			info, err := s.Root.Stat(p)
			if err != nil {
				continue
			}
			if info.Size() > 0 {
				bad = append(bad, fmt.Sprintf("/%s (%d bytes)", p, info.Size()))
			}
		}
	}
	if len(bad) > 0 {
		return fail("authorized keys baked in: "+strings.Join(bad, ", "), bad...)
	}
	return pass("no authorized_keys under /root or /home/*")
}

func serialConsole() Control {
	return Control{
		Remedy: "Add console=ttyS0 (Azure: console=ttyS0 earlyprintk=ttyS0) to GRUB_CMDLINE_LINUX and run update-grub.",
		Audit: func(s *State) check.Result {
			c, err := s.kernelCmdline()
			if err != nil {
				return errorf("%v", err)
			}
			if c == nil {
				return fail("no kernel command line in the boot configuration (no grub.cfg, etc/kernel/cmdline, loader entries or etc/default/grub); want console=ttyS0")
			}
			ev := []string{"source: " + c.Source, "cmdline: " + strings.Join(c.Args, " ")}
			for _, a := range c.Args {
				if strings.HasPrefix(a, "console=ttyS0") || strings.HasPrefix(a, "console=ttyAMA0") {
					return pass("kernel command line has "+a, ev...)
				}
			}
			return fail("kernel command line has no console=ttyS0", ev...)
		},
	}
}

func noSwapFstab(s *State) check.Result {
	ms, ok, err := s.fstab()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return pass("no /etc/fstab")
	}
	var bad []string
	for _, m := range ms {
		if m.Type == "swap" && !contains(m.Options, "noauto") {
			bad = append(bad, m.Source+": "+m.Spec)
		}
	}
	if len(bad) > 0 {
		return fail("swap configured: "+strings.Join(bad, ", "), bad...)
	}
	return pass("no swap entry in /etc/fstab")
}

// Swap partition types: the GPT Linux swap GUID and MBR type 0x82.
const gptSwap = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"

func noSwapPartition(s *State) check.Result {
	if s.Image == nil || s.Image.Table == nil {
		return na("not a disk image: there is no partition table to read")
	}
	var bad []string
	for _, p := range s.Image.Table.Partitions {
		if strings.EqualFold(p.Type, gptSwap) || strings.EqualFold(p.Type, "0x82") {
			bad = append(bad, fmt.Sprintf("partition %d (type %s)", p.Index, p.Type))
		}
	}
	for _, f := range s.Image.Filesystems {
		if f.Type == "swap" {
			bad = append(bad, fmt.Sprintf("partition %d holds swap", f.Partition))
		}
	}
	if len(bad) > 0 {
		return fail("swap on the OS disk: "+strings.Join(bad, ", "), bad...)
	}
	return pass(fmt.Sprintf("%s table with %d partitions, none swap", s.Image.Table.Kind, len(s.Image.Table.Partitions)))
}

func emptyHistory(s *State) check.Result {
	var bad []string
	for _, h := range s.homes() {
		for _, f := range []string{".bash_history", ".zsh_history", ".history", ".python_history"} {
			info, err := s.Root.Stat(h + "/" + f)
			if err == nil && info.Size() > 0 {
				bad = append(bad, fmt.Sprintf("/%s/%s (%d bytes)", h, f, info.Size()))
			}
		}
	}
	if len(bad) > 0 {
		return fail("shell histories are not empty: "+strings.Join(bad, ", "), bad...)
	}
	return pass("no non-empty shell history under /root or /home/*")
}

func machineID() Control {
	return Control{
		Remedy: "Empty /etc/machine-id (truncate -s 0) so systemd generates one at first boot.",
		Audit: func(s *State) check.Result {
			text, ok, err := s.readText("etc/machine-id")
			if err != nil {
				return errorf("%v", err)
			}
			t := strings.TrimSpace(text)
			switch {
			case !ok:
				return pass("no /etc/machine-id: systemd generates one at first boot")
			case t == "" || t == "uninitialized":
				return pass(fmt.Sprintf("/etc/machine-id is %q: systemd generates one at first boot", t))
			}
			return fail("/etc/machine-id is set ("+t+"); every VM from this image would share it", "/etc/machine-id")
		},
		Fix: func(s *State, c *remediate.Changer) error {
			return c.Write("etc/machine-id", nil, 0o444)
		},
	}
}

func dhcpNetworking(s *State) check.Result {
	var ev []string
	// systemd-networkd
	if st, err := s.unit("systemd-networkd.service"); err == nil && st.Enabled {
		for _, f := range s.expand([]string{"etc/systemd/network/*.network", "run/systemd/network/*.network", "usr/lib/systemd/network/*.network"}) {
			text, _, err := s.readText(f)
			if err != nil {
				return errorf("%v", err)
			}
			for _, l := range sysconf.Lines(text) {
				k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
				if ok && strings.TrimSpace(k) == "DHCP" && eq("yes", "ipv4", "true", "both", "ipv6")(strings.TrimSpace(v)) {
					return pass("systemd-networkd configures DHCP", "/"+f, "systemd-networkd.service enabled")
				}
			}
		}
		ev = append(ev, "systemd-networkd is enabled but no .network file sets DHCP=")
	}
	// netplan
	for _, f := range s.expand([]string{"etc/netplan/*.yaml", "etc/netplan/*.yml"}) {
		text, _, err := s.readText(f)
		if err != nil {
			return errorf("%v", err)
		}
		if strings.Contains(text, "dhcp4: true") || strings.Contains(text, "dhcp4: yes") {
			return pass("netplan configures DHCP", "/"+f)
		}
	}
	// ifupdown
	for _, f := range s.expand([]string{"etc/network/interfaces", "etc/network/interfaces.d/*"}) {
		text, _, err := s.readText(f)
		if err != nil {
			return errorf("%v", err)
		}
		for _, l := range sysconf.Lines(text) {
			fl := strings.Fields(l)
			if len(fl) >= 4 && fl[0] == "iface" && fl[1] != "lo" && fl[3] == "dhcp" {
				return pass("ifupdown configures DHCP on "+fl[1], "/"+f)
			}
		}
	}
	if got, _, _ := s.installedAny("network-manager", "NetworkManager"); len(got) > 0 {
		if st, err := s.unit("NetworkManager.service"); err == nil && st.Enabled {
			return pass("NetworkManager is enabled (it configures wired interfaces by DHCP by default)", got...)
		}
	}
	return fail("no DHCP configuration found (systemd-networkd, netplan, ifupdown, NetworkManager)", ev...)
}

func sixtyFour(s *State) check.Result {
	for _, p := range []string{"usr/bin/env", "bin/env", "usr/bin/sh", "bin/sh"} {
		f, err := s.Root.Open(p)
		if err != nil {
			continue
		}
		var hdr [20]byte
		n, _ := f.Read(hdr[:])
		f.Close()
		if n < 20 || string(hdr[:4]) != elf.ELFMAG {
			continue
		}
		m := elf.Machine(uint16(hdr[18]) | uint16(hdr[19])<<8)
		if hdr[elf.EI_DATA] == byte(elf.ELFDATA2MSB) {
			m = elf.Machine(uint16(hdr[19]) | uint16(hdr[18])<<8)
		}
		ev := fmt.Sprintf("/%s: %s %s", p, elf.Class(hdr[elf.EI_CLASS]), m)
		if elf.Class(hdr[elf.EI_CLASS]) == elf.ELFCLASS64 {
			return pass("64-bit userland ("+m.String()+")", ev)
		}
		return fail("32-bit userland ("+m.String()+")", ev)
	}
	kc, err := s.kernelConfig()
	if err != nil {
		return errorf("%v", err)
	}
	if kc != nil {
		if kc.Values["CONFIG_64BIT"] == "y" {
			return pass("64-bit kernel", "/"+kc.File+": CONFIG_64BIT=y")
		}
		return fail("32-bit kernel", "/"+kc.File)
	}
	return errorf("baseline: cannot tell the architecture: no readable usr/bin/env and no boot/config-*")
}
