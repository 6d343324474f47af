package baseline

import (
	"debug/elf"
	"fmt"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/elfscan"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// hardeningRules are kernel-hardening-checker's kconfig, command line and
// sysctl recommendations and checksec's ELF properties.
func hardeningRules() []Rule {
	khc := []string{"kernel-hardening-checker"}
	type kc struct {
		name string
		want []string
		sev  finding.Severity
		x86  bool
		why  string
	}
	kconf := []kc{
		{"STRICT_DEVMEM", []string{"y"}, medium, false, "/dev/mem must not expose all physical memory"},
		{"IO_STRICT_DEVMEM", []string{"y"}, low, false, "/dev/mem must not expose I/O memory claimed by drivers"},
		{"STRICT_KERNEL_RWX", []string{"y"}, high, false, "kernel text read-only and data non-executable"},
		{"STRICT_MODULE_RWX", []string{"y"}, high, false, "module text read-only and data non-executable"},
		{"MODULE_SIG", []string{"y"}, medium, false, "modules carry signatures the kernel can check"},
		{"MODULE_SIG_FORCE", []string{"y"}, low, false, "unsigned modules are refused even without lockdown"},
		{"SECURITY_LOCKDOWN_LSM", []string{"y"}, medium, false, "lockdown keeps root from modifying the running kernel"},
		{"STACKPROTECTOR_STRONG", []string{"y"}, high, false, "stack canaries in kernel functions with arrays or address-taken locals"},
		{"RANDOMIZE_BASE", []string{"y"}, high, false, "kernel address space layout randomisation (KASLR)"},
		{"RANDOMIZE_MEMORY", []string{"y"}, low, true, "randomised kernel memory regions"},
		{"HARDENED_USERCOPY", []string{"y"}, medium, false, "bounds checks on copies between kernel and user memory"},
		{"FORTIFY_SOURCE", []string{"y"}, medium, false, "compile-time and run-time buffer overflow checks in the kernel"},
		{"SECCOMP", []string{"y"}, high, false, "system call filtering for sandboxes"},
		{"SECCOMP_FILTER", []string{"y"}, high, false, "BPF system call filters (used by systemd, browsers, container runtimes)"},
		{"INIT_ON_ALLOC_DEFAULT_ON", []string{"y"}, low, false, "zeroed allocations stop leaks of stale heap data"},
		{"SLAB_FREELIST_RANDOM", []string{"y"}, low, false, "randomised slab freelists make heap grooming harder"},
		{"SLAB_FREELIST_HARDENED", []string{"y"}, low, false, "freelist pointer obfuscation and checks"},
		{"SHUFFLE_PAGE_ALLOCATOR", []string{"y"}, low, false, "randomised page allocator freelists"},
		{"VMAP_STACK", []string{"y"}, medium, false, "kernel stacks with guard pages"},
		{"SCHED_STACK_END_CHECK", []string{"y"}, low, false, "detects kernel stack overflows"},
		{"BUG_ON_DATA_CORRUPTION", []string{"y"}, low, false, "stops on detected list corruption instead of continuing"},
		{"SECURITY_YAMA", []string{"y"}, medium, false, "Yama restricts ptrace"},
		{"SECURITY_DMESG_RESTRICT", []string{"y"}, low, false, "kernel log readable by root only by default"},
		{"BPF_UNPRIV_DEFAULT_OFF", []string{"y"}, medium, false, "unprivileged BPF off by default"},
		{"LEGACY_VSYSCALL_NONE", []string{"y"}, low, true, "no legacy vsyscall page at a fixed address"},
		{"PAGE_TABLE_ISOLATION", []string{"y"}, high, true, "Meltdown mitigation"},
		{"RETPOLINE", []string{"y"}, high, true, "Spectre v2 mitigation"},
		{"PROC_KCORE", []string{"n"}, low, false, "/proc/kcore exposes kernel memory"},
		{"COMPAT_BRK", []string{"n"}, low, false, "brk randomisation is disabled for old binaries with COMPAT_BRK"},
		{"ACPI_CUSTOM_METHOD", []string{"n"}, medium, false, "writable ACPI methods let root modify kernel memory"},
		{"DEVKMEM", []string{"n"}, medium, false, "/dev/kmem exposes kernel memory"},
	}
	var out []Rule
	for _, k := range kconf {
		c := kconfigIs(k.name, k.want...)
		if k.x86 {
			c = onlyX86(c)
		}
		out = append(out, Rule{ID: "hardening.kconfig-" + slug(k.name), Title: "Kernel built with CONFIG_" + k.name + "=" + k.want[0],
			Severity: k.sev, References: khc, Rationale: strings.ToUpper(k.why[:1]) + k.why[1:] + ".", Control: c})
	}
	out = append(out, Rule{ID: "hardening.kconfig-mmap-min-addr", Title: "Kernel built with CONFIG_DEFAULT_MMAP_MIN_ADDR >= 65536", Severity: medium,
		References: khc, Rationale: "Mapping page zero turns kernel NULL dereferences into exploits.", Control: kconfigAtLeast("DEFAULT_MMAP_MIN_ADDR", 65536)})

	type cl struct {
		id, title string
		c         Control
		sev       finding.Severity
		why       string
	}
	cmd := []cl{
		{"no-mitigations-off", "CPU vulnerability mitigations are not turned off", cmdlineLacks("mitigations=off"), high, "mitigations=off disables every Spectre/Meltdown-class mitigation"},
		{"no-pti-off", "Page table isolation is not turned off", cmdlineLacks("pti=off", "nopti"), high, "pti=off reopens Meltdown"},
		{"no-spectre-v2-off", "Spectre v2 mitigation is not turned off", cmdlineLacks("spectre_v2=off", "nospectre_v2"), high, "spectre_v2=off reopens branch target injection"},
		{"no-nokaslr", "KASLR is not turned off", cmdlineLacks("nokaslr"), high, "nokaslr puts the kernel at a fixed address"},
		{"no-nosmep-nosmap", "SMEP and SMAP are not turned off", cmdlineLacks("nosmep", "nosmap"), high, "SMEP and SMAP stop the kernel from running or reading user memory"},
		{"no-init-on-alloc-off", "Zeroing of allocations is not turned off", cmdlineLacks("init_on_alloc=0"), low, "init_on_alloc=0 overrides the kernel's safer default"},
		{"no-selinux-apparmor-off", "The LSM is not turned off", cmdlineLacks("apparmor=0", "selinux=0", "lsm="), medium, "turning off the LSM at boot removes mandatory access control"},
		{"slab-nomerge", "Slab caches are not merged (slab_nomerge)", cmdlineHas("slab_nomerge"), low, "merged caches let a heap overflow in one cache reach another"},
		{"page-alloc-shuffle", "Page allocator randomisation is on (page_alloc.shuffle=1)", cmdlineHas("page_alloc.shuffle", "1"), low, "randomised free lists make heap exploits less reliable"},
		{"lockdown", "Kernel lockdown is requested (lockdown=integrity or confidentiality)", cmdlineHas("lockdown", "integrity", "confidentiality"), low, "lockdown keeps root from modifying the running kernel; Secure Boot enables it too"},
		{"vsyscall-none", "The legacy vsyscall page is off", vsyscallNone(), low, "a fixed-address vsyscall page is a gadget source"},
	}
	for _, c := range cmd {
		out = append(out, Rule{ID: "hardening.cmdline-" + c.id, Title: c.title, Severity: c.sev, References: khc,
			Rationale: strings.ToUpper(c.why[:1]) + c.why[1:] + ".", Control: c.c})
	}

	type sc struct {
		key, op, want string
		sev           finding.Severity
		why           string
	}
	sys := []sc{
		{"kernel.kptr_restrict", "=", "2", medium, "kernel pointers in /proc must be hidden from everyone"},
		{"kernel.dmesg_restrict", "=", "1", low, "the kernel log leaks addresses"},
		{"kernel.unprivileged_bpf_disabled", "=", "1", medium, "unprivileged BPF, a rich source of kernel exploits (1 keeps it off until reboot; 2, Debian's default, lets root turn it back on)"},
		{"kernel.yama.ptrace_scope", ">=", "1", medium, "ptrace of non-descendants lets one process read another's memory"},
		{"fs.protected_symlinks", "=", "1", medium, "symlink races in sticky directories"},
		{"fs.protected_hardlinks", "=", "1", medium, "hard links to files the user does not own"},
		{"fs.protected_fifos", "=", "2", low, "FIFO spoofing in sticky directories"},
		{"fs.protected_regular", "=", "2", low, "regular file spoofing in sticky directories"},
		{"kernel.randomize_va_space", "=", "2", high, "full ASLR"},
		{"net.core.bpf_jit_harden", "=", "2", low, "JIT spraying through BPF"},
		{"dev.tty.ldisc_autoload", "=", "0", low, "autoloading line disciplines exposes rarely used, buggy drivers"},
		{"kernel.kexec_load_disabled", "=", "1", low, "kexec lets root replace the running kernel"},
		{"vm.unprivileged_userfaultfd", "=", "0", low, "userfaultfd makes kernel race conditions reliable"},
		{"kernel.sysrq", "=", "0", low, "magic SysRq gives anyone at the console control of the kernel"},
		{"kernel.perf_event_paranoid", ">=", "3", low, "perf events by unprivileged users are kernel attack surface"},
		{"fs.suid_dumpable", "=", "0", medium, "setuid programs must not dump memory"},
		{"kernel.modules_disabled", "=", "1", info, "module loading locked after boot keeps rootkits out (breaks hot-plugged hardware)"},
	}
	for _, x := range sys {
		out = append(out, Rule{ID: "hardening.sysctl-" + slug(x.key), Title: x.key + " " + strings.ReplaceAll(x.op, "in", "is") + " " + strings.ReplaceAll(x.want, "|", " or "),
			Severity: x.sev, References: khc, Rationale: "Protects against " + x.why + ".", Control: sysctlRule(x.key, x.op, x.want)})
	}

	out = append(out,
		Rule{ID: "hardening.disk-encryption", Title: "The root file system is encrypted", Severity: low,
			Rationale: "Encryption at rest protects a disk or snapshot taken away from the host.",
			Control:   custom("Encryption must be set up when the disk is created (LUKS or the cloud's disk encryption); vouch cannot add it.", diskEncryption)},
	)

	checksec := []string{"checksec 2.6.0 (slimm609/checksec.sh)"}
	all := func(*elfscan.Info) bool { return true }
	x86 := func(e *elfscan.Info) bool { return e.Machine == elf.EM_X86_64 || e.Machine == elf.EM_386 }
	arm := func(e *elfscan.Info) bool { return e.Machine == elf.EM_AARCH64 }
	out = append(out,
		Rule{ID: "hardening.elf-pie", Title: "Executables are position independent (PIE)", Severity: medium, References: checksec,
			Rationale: "A non-PIE executable loads at a fixed address, giving ASLR nothing to randomise.",
			Control:   elfRule("PIE", func(e *elfscan.Info) bool { return e.Executable() }, func(e *elfscan.Info) bool { return e.PIE() == "no" }, "-fPIE -pie")},
		Rule{ID: "hardening.elf-nx", Title: "Binaries have a non-executable stack (NX)", Severity: high, References: checksec,
			Rationale: "An executable stack lets injected code run.",
			Control:   elfRule("a non-executable stack", all, func(e *elfscan.Info) bool { return !e.NX() }, "-z noexecstack")},
		Rule{ID: "hardening.elf-relro", Title: "Binaries have RELRO", Severity: low, References: checksec,
			Rationale: "RELRO makes relocation data read-only after start-up.",
			Control:   elfRule("RELRO", all, func(e *elfscan.Info) bool { return !e.Relro }, "-Wl,-z,relro")},
		Rule{ID: "hardening.elf-bind-now", Title: "Binaries have full RELRO (BIND_NOW)", Severity: low, References: checksec,
			Rationale: "With immediate binding the GOT is read-only too, so it cannot be overwritten.",
			Control:   elfRule("full RELRO (RELRO and BIND_NOW)", all, func(e *elfscan.Info) bool { return !e.FullRelro() }, "-Wl,-z,now")},
		Rule{ID: "hardening.elf-canary", Title: "Binaries use stack canaries", Severity: low, References: checksec,
			Rationale: "Stack canaries stop stack buffer overflows from reaching the return address.",
			Control:   elfRule("a stack canary", all, func(e *elfscan.Info) bool { return !e.Canary }, "-fstack-protector-strong")},
		Rule{ID: "hardening.elf-fortify", Title: "Binaries that call fortifiable functions use FORTIFY_SOURCE", Severity: low, References: checksec,
			Rationale: "_FORTIFY_SOURCE replaces unsafe libc calls with bounds-checked ones.",
			Control:   elfRule("FORTIFY_SOURCE", func(e *elfscan.Info) bool { return e.Fortifiable > 0 || e.FortifySource }, func(e *elfscan.Info) bool { return !e.FortifySource }, "-D_FORTIFY_SOURCE=2 -O2")},
		Rule{ID: "hardening.elf-cet-ibt", Title: "x86 binaries are marked for indirect branch tracking (CET IBT)", Severity: info, References: []string{"x86-64 psABI GNU_PROPERTY_X86_FEATURE_1_IBT"},
			Rationale: "IBT restricts indirect jumps to ENDBR targets on CPUs that enforce it.",
			Control:   elfRule("the CET IBT property", x86, func(e *elfscan.Info) bool { return !e.IBT }, "-fcf-protection=full")},
		Rule{ID: "hardening.elf-cet-shstk", Title: "x86 binaries are marked shadow-stack compatible (CET SHSTK)", Severity: info, References: []string{"x86-64 psABI GNU_PROPERTY_X86_FEATURE_1_SHSTK"},
			Rationale: "A shadow stack stops return-oriented programming on CPUs that enforce it.",
			Control:   elfRule("the CET SHSTK property", x86, func(e *elfscan.Info) bool { return !e.SHSTK }, "-fcf-protection=full")},
		Rule{ID: "hardening.elf-bti", Title: "arm64 binaries are marked for branch target identification (BTI)", Severity: info, References: []string{"AArch64 ELF ABI GNU_PROPERTY_AARCH64_FEATURE_1_BTI"},
			Rationale: "BTI restricts indirect branches to landing pads on CPUs that enforce it.",
			Control:   elfRule("the BTI property", arm, func(e *elfscan.Info) bool { return !e.BTI }, "-mbranch-protection=standard")},
	)
	return out
}

func slug(s string) string {
	return strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(s))
}

func onlyX86(c Control) Control {
	inner := c.Audit
	c.Audit = func(s *State) check.Result {
		kc, err := s.kernelConfig()
		if err == nil && kc != nil && kc.Values["CONFIG_X86"] != "y" {
			return na("an x86 option; the kernel is not x86")
		}
		return inner(s)
	}
	return c
}

func vsyscallNone() Control {
	c := cmdlineHas("vsyscall", "none")
	inner := c.Audit
	c.Audit = func(s *State) check.Result {
		if kc, _ := s.kernelConfig(); kc != nil {
			if kc.Values["CONFIG_X86_64"] != "y" {
				return na("vsyscall exists only on x86-64")
			}
			if kc.Values["CONFIG_LEGACY_VSYSCALL_NONE"] == "y" {
				if cl, _ := s.kernelCmdline(); cl == nil || !containsPrefix(cl.Args, "vsyscall=") {
					return pass("the kernel defaults to vsyscall=none (CONFIG_LEGACY_VSYSCALL_NONE=y)", "/"+kc.File)
				}
			}
		}
		return inner(s)
	}
	return c
}

func containsPrefix(l []string, p string) bool {
	for _, x := range l {
		if strings.HasPrefix(x, p) {
			return true
		}
	}
	return false
}

func diskEncryption(s *State) check.Result {
	if s.Image != nil {
		for _, f := range s.Image.Filesystems {
			if f.Type == "crypto_LUKS" || f.Type == "luks" {
				return pass(fmt.Sprintf("partition %d holds a LUKS volume", f.Partition))
			}
		}
	}
	text, ok, err := s.readText("etc/crypttab")
	if err != nil {
		return errorf("%v", err)
	}
	if ok {
		for _, l := range sysconf.Lines(text) {
			if f := strings.Fields(l); len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
				return pass("etc/crypttab maps "+f[0]+" from "+f[1], "/etc/crypttab")
			}
		}
	}
	ms, _, err := s.fstab()
	if err != nil {
		return errorf("%v", err)
	}
	for _, m := range ms {
		if m.Dir == "/" && strings.HasPrefix(m.Spec, "/dev/mapper/") {
			return pass("the root file system is on device-mapper ("+m.Spec+")", m.Source)
		}
	}
	return fail("no encrypted volume: etc/crypttab has no entry and the root is not on dm-crypt (offline: from the boot configuration)")
}
