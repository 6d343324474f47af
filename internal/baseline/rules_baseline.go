package baseline

import (
	"io/fs"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/finding"
)

const (
	info   = finding.Info
	low    = finding.Low
	medium = finding.Medium
	high   = finding.High
)

var debianLike = []string{"debian", "ubuntu"}
var rhelLike = []string{"rhel", "fedora", "centos", "rocky", "almalinux", "azurelinux", "mariner", "ol", "amzn"}

// baselineRules is the CIS-derived suite, in benchmark order.
func baselineRules() []Rule {
	var out []Rule
	out = append(out, moduleRules()...)
	out = append(out, mountRules()...)
	out = append(out, systemRules()...)
	out = append(out, serviceRules()...)
	out = append(out, networkRules()...)
	out = append(out, sshRules()...)
	out = append(out, accessRules()...)
	out = append(out, accountRules()...)
	out = append(out, loggingRules()...)
	out = append(out, fileRules()...)
	return out
}

// ---- 1.1.1 and 3.2: kernel modules -----------------------------------------------

func moduleRules() []Rule {
	mods := []struct{ name, cis, why string }{
		{"cramfs", "1.1.1.1", "cramfs is a legacy compressed read-only file system; an unused file system driver is attack surface for crafted images"},
		{"freevxfs", "1.1.1.2", "freevxfs (Veritas) is not used on Linux servers; its parser is attack surface"},
		{"hfs", "1.1.1.3", "HFS (classic Mac) is not needed on a server; crafted HFS images have crashed the kernel"},
		{"hfsplus", "1.1.1.4", "HFS+ is not needed on a server; its parser is attack surface"},
		{"jffs2", "1.1.1.5", "JFFS2 is a flash file system not used on servers"},
		{"overlay", "1.1.1.6", "overlayfs has been the vector of several privilege escalations; disable it where containers are not run"},
		{"squashfs", "1.1.1.7", "squashfs images can be mounted by users through udisks; disable it where snaps are not used"},
		{"udf", "1.1.1.8", "UDF (optical media) is not needed on a server"},
		{"usb-storage", "1.1.1.9", "USB mass storage lets anyone with physical access copy data off or plant malware"},
		{"dccp", "3.2.1", "DCCP is an unused transport protocol with a history of remote kernel bugs"},
		{"tipc", "3.2.2", "TIPC is a cluster protocol not used on general servers; its remote bugs are reachable when loaded"},
		{"rds", "3.2.3", "RDS is an unused transport protocol with a history of local privilege escalations"},
		{"sctp", "3.2.4", "SCTP is rarely used; loading it on demand exposes its parser to the network"},
		{"afs", "1.1.1.10", "AFS is a network file system rarely used; unused file system drivers are attack surface"},
		{"ceph", "1.1.1.10", "the Ceph client file system is not needed outside Ceph clusters"},
		{"gfs2", "1.1.1.10", "GFS2 is a cluster file system not needed on a single host"},
		{"nilfs2", "1.1.1.10", "NILFS2 is an unusual file system not needed on servers"},
		{"firewire-core", "", "FireWire allows DMA from external devices"},
		{"bluetooth", "3.1.3", "Bluetooth is a radio attack surface a server does not need"},
	}
	var out []Rule
	for _, m := range mods {
		id := "baseline.module-" + strings.ReplaceAll(m.name, "_", "-") + "-disabled"
		r := Rule{ID: id, Title: "Kernel module " + m.name + " cannot be loaded", Severity: low,
			Rationale: m.why + ".", Control: moduleDisabled(m.name)}
		if m.cis != "" {
			r.References = cis(m.cis)
		}
		if m.name == "usb-storage" || m.name == "dccp" || m.name == "sctp" || m.name == "rds" || m.name == "tipc" {
			r.Severity = medium
		}
		out = append(out, r)
	}
	return out
}

// ---- 1.1.2: partitions and mount options -------------------------------------------

func mountRules() []Rule {
	type mp struct {
		dir, cis string
		opts     []string
	}
	mps := []mp{
		{"/tmp", "1.1.2.1", []string{"nodev", "nosuid", "noexec"}},
		{"/dev/shm", "1.1.2.2", []string{"nodev", "nosuid", "noexec"}},
		{"/home", "1.1.2.3", []string{"nodev", "nosuid"}},
		{"/var", "1.1.2.4", []string{"nodev", "nosuid"}},
		{"/var/tmp", "1.1.2.5", []string{"nodev", "nosuid", "noexec"}},
		{"/var/log", "1.1.2.6", []string{"nodev", "nosuid", "noexec"}},
		{"/var/log/audit", "1.1.2.7", []string{"nodev", "nosuid", "noexec"}},
	}
	why := map[string]string{
		"nodev":  "device files on it would give direct access to hardware and bypass file permissions",
		"nosuid": "set-user-ID programs on it would let users gain privileges",
		"noexec": "programs written there by any user could be run from it",
	}
	var out []Rule
	for _, m := range mps {
		slug := strings.ReplaceAll(strings.Trim(m.dir, "/"), "/", "-")
		if m.dir != "/dev/shm" {
			out = append(out, Rule{ID: "baseline.fs-" + slug + "-separate", Title: m.dir + " is a separate file system",
				Rationale: "A separate file system for " + m.dir + " contains resource exhaustion and lets it carry restrictive mount options.",
				Severity:  low, References: cis(m.cis + ".1"), Control: mountSeparate(m.dir)})
		}
		for i, o := range m.opts {
			out = append(out, Rule{ID: "baseline.fs-" + slug + "-" + o, Title: m.dir + " is mounted " + o,
				Rationale: "Without " + o + " on " + m.dir + ", " + why[o] + ".",
				Severity:  medium, References: cis(m.cis + "." + itoa(i+2)), Control: mountOption(m.dir, o)})
		}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// ---- 1.2 to 1.7: packages, MAC, boot loader, process hardening, banners -------------------

func systemRules() []Rule {
	banner := "Authorized uses only. All activity may be monitored and reported."
	return []Rule{
		{ID: "baseline.apt-signed-sources", Title: "APT sources are not marked trusted=yes", Severity: high, Platforms: debianLike,
			Rationale:  "A source with trusted=yes or AllowInsecureRepositories installs packages without verifying their signatures.",
			References: cis("1.2.1.1"),
			Control:    aptSigned()},
		{ID: "baseline.apparmor-installed", Title: "AppArmor is installed", Severity: medium, Platforms: debianLike,
			Rationale: "AppArmor confines services to what their profiles allow.", References: cis("1.3.1.1"),
			Control: packageInstalled("apparmor")},
		{ID: "baseline.apparmor-boot", Title: "AppArmor is not disabled on the kernel command line", Severity: medium, Platforms: debianLike,
			Rationale: "Debian's kernel enables AppArmor by default; apparmor=0 or security=selinux on the command line turns it off.", References: cis("1.3.1.2"),
			Control: apparmorBoot()},
		{ID: "baseline.apparmor-profiles", Title: "AppArmor profiles are installed", Severity: low, Platforms: debianLike,
			Rationale: "Without profiles AppArmor confines nothing.", References: cis("1.3.1.3"),
			Control: gated(custom("Install apparmor-profiles and keep them in enforce mode.", apparmorProfiles), "apparmor")},
		{ID: "baseline.selinux-enforcing", Title: "SELinux is enforcing", Severity: high, Platforms: rhelLike,
			Rationale: "SELinux confines services on RHEL-like systems; permissive or disabled mode enforces nothing.", References: []string{"CIS RHEL 9 v2.0.0 1.3.1.5"},
			Control: contentMatches([]string{"etc/selinux/config"}, `^\s*SELINUX\s*=\s*enforcing\s*$`, "sets SELINUX=enforcing", fail("no /etc/selinux/config"))},
		{ID: "baseline.selinux-policy", Title: "SELinux policy is targeted or mls", Severity: medium, Platforms: rhelLike,
			Rationale: "The targeted or mls policy must be loaded for SELinux to confine services.", References: []string{"CIS RHEL 9 v2.0.0 1.3.1.3"},
			Control: contentMatches([]string{"etc/selinux/config"}, `^\s*SELINUXTYPE\s*=\s*(targeted|mls)\s*$`, "sets SELINUXTYPE=targeted or mls", fail("no /etc/selinux/config"))},
		{ID: "baseline.selinux-boot", Title: "SELinux is not disabled on the kernel command line", Severity: high, Platforms: rhelLike,
			Rationale: "selinux=0 or enforcing=0 at boot disables SELinux whatever its configuration says.", References: []string{"CIS RHEL 9 v2.0.0 1.3.1.2"},
			Control: cmdlineLacks("selinux=0", "enforcing=0")},
		{ID: "baseline.grub-password", Title: "Boot loader requires a password to edit entries", Severity: medium,
			Rationale: "Without a GRUB superuser password anyone at the console can edit the kernel command line (init=/bin/sh) and bypass authentication.", References: cis("1.4.1"),
			Control: grubPassword()},
		{ID: "baseline.grub-cfg-perms", Title: "Boot loader configuration is readable only by root", Severity: medium,
			Rationale: "grub.cfg may hold the password hash and reveals boot parameters.", References: cis("1.4.2"),
			Control: grubPerms()},
		{ID: "baseline.aslr", Title: "Address space layout randomisation is fully enabled", Severity: high,
			Rationale: "kernel.randomize_va_space=2 randomises stack, mmap, vDSO and heap positions, defeating exploits that need fixed addresses.", References: cis("1.5.1"),
			Control: sysctlRule("kernel.randomize_va_space", "=", "2")},
		{ID: "baseline.ptrace-scope", Title: "ptrace is restricted to descendants", Severity: medium,
			Rationale: "kernel.yama.ptrace_scope>=1 stops any process from reading another's memory under the same user.", References: cis("1.5.2"),
			Control: sysctlRule("kernel.yama.ptrace_scope", ">=", "1")},
		{ID: "baseline.core-dumps-limits", Title: "Core dumps are disabled for all users (hard core 0)", Severity: medium,
			Rationale: "Core dumps of privileged programs can leak secrets.", References: cis("1.5.3"),
			Control: coreLimits()},
		{ID: "baseline.core-dumps-suid", Title: "Set-user-ID programs do not dump core", Severity: medium,
			Rationale: "fs.suid_dumpable=0 keeps setuid programs from writing memory that may hold secrets.", References: cis("1.5.3"),
			Control: sysctlRule("fs.suid_dumpable", "=", "0")},
		{ID: "baseline.coredump-storage", Title: "systemd-coredump does not store core dumps", Severity: low,
			Rationale: "Storage=none keeps systemd-coredump from writing core files.", References: cis("1.5.3"),
			Control: gated(iniSetting("coredump.conf", "Coredump", "Storage", "external", eq("none"), "none", "none"), "systemd-coredump")},
		{ID: "baseline.coredump-size", Title: "systemd-coredump processes no core dumps", Severity: low,
			Rationale: "ProcessSizeMax=0 disables core dump processing.", References: cis("1.5.3"),
			Control: gated(iniSetting("coredump.conf", "Coredump", "ProcessSizeMax", "2G", eq("0"), "0", "0"), "systemd-coredump")},
		{ID: "baseline.prelink-absent", Title: "prelink is not installed", Severity: low, Platforms: debianLike,
			Rationale: "prelink rewrites binaries, defeats ASLR for libraries and breaks integrity checking.", References: cis("1.5.4"),
			Control: packageAbsent("prelink")},
		{ID: "baseline.apport-absent", Title: "Automatic error reporting is not installed", Severity: low, Platforms: debianLike,
			Rationale: "apport collects and may send core dumps holding sensitive data.", References: cis("1.5.5"),
			Control: packageAbsent("apport")},
		{ID: "baseline.motd-no-os-info", Title: "Message of the day reveals no OS version", Severity: info,
			Rationale: "Version details in banners help attackers choose exploits.", References: cis("1.6.1"),
			Control: bannerClean("etc/motd", banner)},
		{ID: "baseline.issue-no-os-info", Title: "Local login banner reveals no OS version", Severity: info,
			Rationale: "The default /etc/issue shows the distribution and kernel (\\m \\r \\s \\v).", References: cis("1.6.2"),
			Control: bannerClean("etc/issue", banner)},
		{ID: "baseline.issue-net-no-os-info", Title: "Remote login banner reveals no OS version", Severity: info,
			Rationale: "/etc/issue.net is shown before authentication to remote users.", References: cis("1.6.3"),
			Control: bannerClean("etc/issue.net", banner)},
		{ID: "baseline.motd-perms", Title: "/etc/motd is 0644 root:root", Severity: low,
			Rationale: "A writable banner lets users mislead others.", References: cis("1.6.4"),
			Control: fileMode("etc/motd", 0o644, "root", "root")},
		{ID: "baseline.issue-perms", Title: "/etc/issue is 0644 root:root", Severity: low,
			Rationale: "A writable banner lets users mislead others.", References: cis("1.6.5"),
			Control: fileMode("etc/issue", 0o644, "root", "root")},
		{ID: "baseline.issue-net-perms", Title: "/etc/issue.net is 0644 root:root", Severity: low,
			Rationale: "A writable banner lets users mislead others.", References: cis("1.6.6"),
			Control: fileMode("etc/issue.net", 0o644, "root", "root")},
		{ID: "baseline.gdm-absent", Title: "GNOME Display Manager is not installed", Severity: low, Platforms: debianLike,
			Rationale: "A server needs no graphical login.", References: cis("1.7.1"),
			Control: packageAbsent("gdm3")},
		{ID: "baseline.nx", Title: "The kernel uses no-execute (NX) page protection", Severity: high,
			Rationale: "NX keeps data pages from being executed; a 64-bit or PAE kernel with NX not disabled on the command line enforces it.", References: []string{"azure-osconfig EnsureNxEnabled"},
			Control: nxEnabled()},
	}
}

// ---- 2.1 to 2.4: services -----------------------------------------------------------

func serviceRules() []Rule {
	type svc struct {
		id, title, cis string
		pkgs           []string
		sev            finding.Severity
		why            string
	}
	servers := []svc{
		{"autofs", "autofs", "2.1.1", []string{"autofs"}, low, "automounting removable media lets users bring in untrusted file systems"},
		{"avahi", "Avahi (mDNS/DNS-SD)", "2.1.2", []string{"avahi-daemon"}, medium, "zero-configuration discovery advertises the host and its services on the local network"},
		{"dhcp-server", "a DHCP server", "2.1.3", []string{"isc-dhcp-server", "kea"}, medium, "a DHCP server is only needed on a DHCP server"},
		{"dns-server", "a DNS server", "2.1.4", []string{"bind9"}, medium, "a DNS server is only needed on a name server"},
		{"dnsmasq", "dnsmasq", "2.1.5", []string{"dnsmasq"}, medium, "dnsmasq answers DNS and DHCP on the network"},
		{"ftp-server", "an FTP server", "2.1.6", []string{"vsftpd", "proftpd-basic", "pure-ftpd"}, high, "FTP sends credentials in clear text"},
		{"ldap-server", "an LDAP server", "2.1.7", []string{"slapd"}, medium, "an LDAP server is only needed on a directory server"},
		{"mail-access", "an IMAP/POP3 server", "2.1.8", []string{"dovecot-imapd", "dovecot-pop3d"}, medium, "a mail access server is only needed on a mail server"},
		{"nfs-server", "an NFS server", "2.1.9", []string{"nfs-kernel-server"}, medium, "NFS exports file systems to the network"},
		{"nis-server", "a NIS server", "2.1.10", []string{"ypserv"}, high, "NIS is unencrypted and its maps leak password hashes"},
		{"print-server", "CUPS", "2.1.11", []string{"cups"}, low, "a print server exposes IPP and a web interface"},
		{"rpcbind", "rpcbind", "2.1.12", []string{"rpcbind"}, medium, "rpcbind maps RPC services and has been abused for reflection attacks"},
		{"samba", "Samba", "2.1.14", []string{"samba"}, medium, "an SMB server is only needed on a file server"},
		{"snmp", "an SNMP server", "2.1.15", []string{"snmpd"}, medium, "SNMP v1/v2c use clear-text community strings"},
		{"tftp-server", "a TFTP server", "2.1.16", []string{"tftpd-hpa", "atftpd"}, high, "TFTP has no authentication"},
		{"web-proxy", "a web proxy", "2.1.17", []string{"squid"}, medium, "a web proxy is only needed on a proxy server"},
		{"web-server", "a web server", "2.1.18", []string{"apache2", "nginx"}, low, "a web server is only needed where web content is served"},
		{"xinetd", "xinetd", "2.1.19", []string{"xinetd", "openbsd-inetd", "inetutils-inetd"}, medium, "an inet super-server starts legacy network services on demand"},
		{"x-server", "the X Window System server", "2.1.20", []string{"xserver-xorg-core", "xserver-xorg"}, low, "a server needs no graphical display server"},
		{"telnet-server", "a telnet server", "2.1.19", []string{"telnetd", "inetutils-telnetd", "telnetd-ssl"}, high, "telnet sends credentials in clear text"},
		{"rsh-server", "an rsh/rlogin server", "2.1.19", []string{"rsh-server", "rsh-redone-server"}, high, "the r-services authenticate by host name and send data in clear text"},
		{"talk-server", "a talk server", "2.1.19", []string{"talkd", "inetutils-talkd"}, low, "talk is a legacy unauthenticated service"},
	}
	clients := []svc{
		{"nis-client", "the NIS client", "2.2.1", []string{"nis"}, medium, "NIS is unencrypted"},
		{"rsh-client", "the rsh client", "2.2.2", []string{"rsh-client", "rsh-redone-client"}, medium, "rsh sends data in clear text"},
		{"talk-client", "the talk client", "2.2.3", []string{"talk", "inetutils-talk"}, low, "talk is a legacy unauthenticated protocol"},
		{"telnet-client", "the telnet client", "2.2.4", []string{"telnet", "inetutils-telnet"}, medium, "telnet sends credentials in clear text"},
		{"ldap-client", "LDAP client utilities", "2.2.5", []string{"ldap-utils"}, low, "LDAP utilities are not needed unless the host manages a directory"},
		{"ftp-client", "an FTP client", "2.2.6", []string{"ftp", "tnftp", "inetutils-ftp"}, low, "FTP sends credentials in clear text"},
	}
	var out []Rule
	for _, s := range servers {
		out = append(out, Rule{ID: "baseline.svc-" + s.id + "-absent", Title: strings.ToUpper(s.title[:1]) + s.title[1:] + " is not installed",
			Severity: s.sev, Platforms: debianLike, References: cis(s.cis), Rationale: "Remove what is not needed: " + s.why + ".",
			Control: packageAbsent(s.pkgs...)})
	}
	out = append(out, Rule{ID: "baseline.svc-rsync-disabled", Title: "The rsync daemon is not enabled", Severity: low, Platforms: debianLike,
		References: cis("2.1.13"), Rationale: "rsync's daemon mode transfers files unencrypted; the rsync client alone is harmless.",
		Control: gated(unitNotEnabled("rsync.service"), "rsync")})
	out = append(out, Rule{ID: "baseline.svc-mta-local-only", Title: "The mail transfer agent listens on loopback only", Severity: medium,
		References: cis("2.1.21"), Rationale: "An MTA reachable from the network can be abused to relay mail.",
		Control: mtaLocal()})
	for _, s := range clients {
		out = append(out, Rule{ID: "baseline.pkg-" + s.id + "-absent", Title: strings.ToUpper(s.title[:1]) + s.title[1:] + " is not installed",
			Severity: s.sev, Platforms: debianLike, References: cis(s.cis), Rationale: "Remove insecure clients: " + s.why + ".",
			Control: packageAbsent(s.pkgs...)})
	}
	out = append(out,
		Rule{ID: "baseline.time-sync-single", Title: "Exactly one time synchronisation daemon is in use", Severity: medium, References: cis("2.3.1.1"),
			Rationale: "Two daemons fight over the clock; none leaves it drifting, breaking logs, Kerberos and TLS.",
			Control:   timeSyncSingle()},
		Rule{ID: "baseline.timesyncd-configured", Title: "systemd-timesyncd has a time server", Severity: low, References: cis("2.3.2.1"),
			Rationale: "timesyncd needs an NTP server (NTP= or FallbackNTP=, or the compiled-in Debian pool).",
			Control:   gated(iniSetting("timesyncd.conf", "Time", "NTP", "", func(string) bool { return true }, "a server", ""), "systemd-timesyncd")},
		Rule{ID: "baseline.timesyncd-enabled", Title: "systemd-timesyncd is enabled", Severity: low, References: cis("2.3.2.2"),
			Rationale: "Installed but disabled, timesyncd keeps no time.",
			Control:   gated(unitEnabled("systemd-timesyncd.service"), "systemd-timesyncd")},
		Rule{ID: "baseline.chrony-configured", Title: "chrony has a time server", Severity: low, References: cis("2.3.3.1"),
			Rationale: "chrony needs server or pool lines.",
			Control:   gated(chronyServers(), "chrony")},
		Rule{ID: "baseline.chrony-user", Title: "chronyd runs as _chrony", Severity: low, References: cis("2.3.3.2"),
			Rationale: "chronyd should drop root after binding its port.",
			Control:   gated(contentLacks([]string{"etc/default/chrony"}, `^\s*DAEMON_OPTS\s*=.*-u\s+root`, "chronyd run as root"), "chrony")},
		Rule{ID: "baseline.chrony-enabled", Title: "chrony is enabled", Severity: low, References: cis("2.3.3.3"),
			Rationale: "Installed but disabled, chrony keeps no time.",
			Control:   gated(unitEnabled("chrony.service"), "chrony")},
		Rule{ID: "baseline.cron-enabled", Title: "cron is enabled", Severity: low, References: cis("2.4.1.1"), Platforms: debianLike,
			Rationale: "cron runs the scheduled maintenance (log rotation, integrity checks).",
			Control:   gated(unitEnabled("cron.service"), "cron", "cronie", "systemd-cron")},
	)
	cronFiles := []struct{ path, cis string }{
		{"etc/crontab", "2.4.1.2"}, {"etc/cron.hourly", "2.4.1.3"}, {"etc/cron.daily", "2.4.1.4"},
		{"etc/cron.weekly", "2.4.1.5"}, {"etc/cron.monthly", "2.4.1.6"}, {"etc/cron.yearly", "2.4.1.6"}, {"etc/cron.d", "2.4.1.7"},
	}
	for _, f := range cronFiles {
		max := 0o700
		if f.path == "etc/crontab" {
			max = 0o600
		}
		out = append(out, Rule{ID: "baseline.perm-" + strings.ReplaceAll(strings.TrimPrefix(f.path, "etc/"), ".", "-"),
			Title: "/" + f.path + " is accessible only by root", Severity: medium, References: cis(f.cis),
			Rationale: "Users who can read or write cron definitions can learn or change what root runs.",
			Control:   fileMode(f.path, fs.FileMode(max), "root", "root")})
	}
	out = append(out,
		Rule{ID: "baseline.cron-allow", Title: "crontab use is restricted to listed users", Severity: low, References: cis("2.4.1.8"),
			Rationale: "/etc/cron.allow limits who can schedule jobs.",
			Control:   gated(restrictedAllow("etc/cron.allow", "etc/cron.deny"), "cron", "cronie")},
		Rule{ID: "baseline.at-allow", Title: "at use is restricted to listed users", Severity: low, References: cis("2.4.2.1"),
			Rationale: "/etc/at.allow limits who can schedule jobs.",
			Control:   gated(restrictedAllow("etc/at.allow", "etc/at.deny"), "at")},
	)
	return out
}

// ---- 3.3 and 4: network parameters and firewall ----------------------------------------------

func networkRules() []Rule {
	type sc struct {
		id, key, op, want, cis string
		sev                    finding.Severity
		why                    string
	}
	list := []sc{
		{"ipv4-forward", "net.ipv4.ip_forward", "=", "0", "3.3.1", medium, "a host that is not a router must not forward packets between interfaces"},
		{"ipv6-forward", "net.ipv6.conf.all.forwarding", "=", "0", "3.3.1", medium, "a host that is not a router must not forward IPv6 packets"},
		{"send-redirects-all", "net.ipv4.conf.all.send_redirects", "=", "0", "3.3.2", medium, "only routers send ICMP redirects; a host sending them can be used to reroute traffic"},
		{"send-redirects-default", "net.ipv4.conf.default.send_redirects", "=", "0", "3.3.2", medium, "new interfaces must not send ICMP redirects either"},
		{"icmp-bogus", "net.ipv4.icmp_ignore_bogus_error_responses", "=", "1", "3.3.3", low, "bogus ICMP error responses fill the logs"},
		{"icmp-broadcast", "net.ipv4.icmp_echo_ignore_broadcasts", "=", "1", "3.3.4", medium, "answering broadcast pings makes the host a smurf amplifier"},
		{"accept-redirects-all", "net.ipv4.conf.all.accept_redirects", "=", "0", "3.3.5", medium, "accepting ICMP redirects lets an attacker change the routing table"},
		{"accept-redirects-default", "net.ipv4.conf.default.accept_redirects", "=", "0", "3.3.5", medium, "new interfaces must not accept ICMP redirects"},
		{"ipv6-accept-redirects-all", "net.ipv6.conf.all.accept_redirects", "=", "0", "3.3.5", medium, "accepting IPv6 redirects lets an attacker change the routing table"},
		{"ipv6-accept-redirects-default", "net.ipv6.conf.default.accept_redirects", "=", "0", "3.3.5", medium, "new interfaces must not accept IPv6 redirects"},
		{"secure-redirects-all", "net.ipv4.conf.all.secure_redirects", "=", "0", "3.3.6", medium, "redirects from listed gateways can still be forged"},
		{"secure-redirects-default", "net.ipv4.conf.default.secure_redirects", "=", "0", "3.3.6", medium, "redirects from listed gateways can still be forged"},
		{"rp-filter-all", "net.ipv4.conf.all.rp_filter", "=", "1", "3.3.7", medium, "strict reverse path filtering drops spoofed source addresses"},
		{"rp-filter-default", "net.ipv4.conf.default.rp_filter", "=", "1", "3.3.7", medium, "strict reverse path filtering drops spoofed source addresses on new interfaces"},
		{"source-route-all", "net.ipv4.conf.all.accept_source_route", "=", "0", "3.3.8", medium, "source-routed packets let the sender pick the path through the network"},
		{"source-route-default", "net.ipv4.conf.default.accept_source_route", "=", "0", "3.3.8", medium, "source-routed packets let the sender pick the path through the network"},
		{"ipv6-source-route-all", "net.ipv6.conf.all.accept_source_route", "=", "0", "3.3.8", medium, "source-routed IPv6 packets let the sender pick the path"},
		{"ipv6-source-route-default", "net.ipv6.conf.default.accept_source_route", "=", "0", "3.3.8", medium, "source-routed IPv6 packets let the sender pick the path"},
		{"log-martians-all", "net.ipv4.conf.all.log_martians", "=", "1", "3.3.9", low, "logging impossible source addresses reveals spoofing"},
		{"log-martians-default", "net.ipv4.conf.default.log_martians", "=", "1", "3.3.9", low, "logging impossible source addresses reveals spoofing"},
		{"tcp-syncookies", "net.ipv4.tcp_syncookies", "=", "1", "3.3.10", medium, "SYN cookies keep a SYN flood from filling the connection queue"},
		{"ipv6-accept-ra-all", "net.ipv6.conf.all.accept_ra", "=", "0", "3.3.11", low, "accepting router advertisements lets any host on the link set routes"},
		{"ipv6-accept-ra-default", "net.ipv6.conf.default.accept_ra", "=", "0", "3.3.11", low, "accepting router advertisements lets any host on the link set routes"},
	}
	var out []Rule
	for _, s := range list {
		out = append(out, Rule{ID: "baseline.net-" + s.id, Title: s.key + " " + s.op + " " + s.want, Severity: s.sev,
			References: cis(s.cis), Rationale: strings.ToUpper(s.why[:1]) + s.why[1:] + ".", Control: sysctlRule(s.key, s.op, s.want)})
	}
	out = append(out,
		Rule{ID: "baseline.firewall-installed", Title: "A packet filter front end is installed", Severity: medium, Platforms: debianLike, References: cis("4.1.1"),
			Rationale: "A host firewall limits what the network can reach.", Control: packageInstalled("nftables", "ufw", "iptables", "firewalld")},
		Rule{ID: "baseline.firewall-enabled", Title: "The packet filter is enabled at boot", Severity: medium, References: cis("4.2.2"),
			Rationale: "An installed but disabled firewall filters nothing.", Control: unitEnabled("nftables.service", "ufw.service", "firewalld.service", "netfilter-persistent.service")},
		Rule{ID: "baseline.firewall-default-deny", Title: "The nftables ruleset drops inbound traffic by default", Severity: medium, References: cis("4.3.8"),
			Rationale: "A default-deny input policy admits only what is allowed explicitly.",
			Control:   gated(contentMatches([]string{"etc/nftables.conf"}, `type\s+filter\s+hook\s+input.*policy\s+drop`, "sets an input hook with policy drop", fail("no /etc/nftables.conf")), "nftables")},
	)
	return out
}

func fileRules() []Rule {
	type pf struct {
		path, cis, owner string
		max              int
		groups           []string
	}
	files := []pf{
		{"etc/passwd", "7.1.1", "root", 0o644, []string{"root"}},
		{"etc/passwd-", "7.1.2", "root", 0o644, []string{"root"}},
		{"etc/group", "7.1.3", "root", 0o644, []string{"root"}},
		{"etc/group-", "7.1.4", "root", 0o644, []string{"root"}},
		{"etc/shadow", "7.1.5", "root", 0o640, []string{"root", "shadow"}},
		{"etc/shadow-", "7.1.6", "root", 0o640, []string{"root", "shadow"}},
		{"etc/gshadow", "7.1.7", "root", 0o640, []string{"root", "shadow"}},
		{"etc/gshadow-", "7.1.8", "root", 0o640, []string{"root", "shadow"}},
		{"etc/shells", "7.1.9", "root", 0o644, []string{"root"}},
		{"etc/security/opasswd", "7.1.10", "root", 0o600, []string{"root"}},
	}
	var out []Rule
	for _, f := range files {
		out = append(out, Rule{ID: "baseline.perm-" + strings.ReplaceAll(strings.ReplaceAll(strings.TrimPrefix(f.path, "etc/"), "/", "-"), "-", "-"),
			Title:    "/" + f.path + " has mode " + octal(f.max) + " or stricter, owner root",
			Severity: high, References: cis(f.cis),
			Rationale: "The account databases must not be writable (or, for hashes, readable) by users.",
			Control:   fileMode(f.path, fs.FileMode(f.max), f.owner, f.groups...)})
	}
	out = append(out,
		Rule{ID: "baseline.world-writable-files", Title: "No world-writable files outside temporary directories", Severity: medium, References: cis("7.1.11"),
			Rationale: "Any user can change a world-writable file; sticky directories are the exception.", Control: custom("chmod o-w the listed files.", worldWritable)},
		Rule{ID: "baseline.unowned-files", Title: "Every file has an owner and group that exist", Severity: low, References: cis("7.1.12"),
			Rationale: "A file whose owner was deleted is taken over by the next user created with that ID.", Control: custom("chown the listed files to existing users.", unowned)},
		Rule{ID: "baseline.suid-sgid-known", Title: "Set-user-ID and set-group-ID programs are the distribution's", Severity: info, References: cis("7.1.13"),
			Rationale: "Each setuid program is a privilege boundary; unexpected ones deserve a review.", Control: custom("Review the listed programs; chmod u-s,g-s those not needed.", suidKnown)},
	)
	return out
}

func octal(m int) string {
	const d = "01234567"
	return string([]byte{'0', d[m>>9&7], d[m>>6&7], d[m>>3&7], d[m&7]})
}
