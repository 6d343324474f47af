package baseline

import (
	"fmt"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

const vouchAuditRules = "etc/audit/rules.d/60-vouch.rules"

// ---- 6: logging, auditing, integrity ---------------------------------------------------------------

func loggingRules() []Rule {
	rsyslog := func(c Control) Control { return gated(c, "rsyslog") }
	auditd := func(c Control) Control { return gated(c, "auditd") }
	aide := func(c Control) Control { return gated(c, "aide") }
	out := []Rule{
		{ID: "baseline.journald-enabled", Title: "systemd-journald is present and not masked", Severity: medium, References: cis("6.1.1.1"),
			Rationale: "journald collects the logs of every service.", Control: gated(custom("Unmask systemd-journald.service.", journaldPresent), "systemd")},
		{ID: "baseline.journald-storage", Title: "journald keeps logs on disk", Severity: medium, References: cis("6.1.2.4"),
			Rationale: "Volatile journals are lost at reboot, with the evidence of what happened.",
			Control:   gated(journaldStorage(), "systemd")},
		{ID: "baseline.journald-compress", Title: "journald compresses large entries", Severity: info, References: cis("6.1.2.3"),
			Rationale: "Compression keeps large logs from filling the disk.",
			Control:   gated(iniSetting("journald.conf", "Journal", "Compress", "yes", eq("yes", "true", "1", "on"), "yes", "yes"), "systemd")},
		{ID: "baseline.journald-forward", Title: "journald forwards to syslog exactly when rsyslog is the log store", Severity: low, References: cis("6.1.2.2 / 6.1.3.3"),
			Rationale: "With rsyslog installed, journald must forward to it; without, forwarding sends logs nowhere.",
			Control:   gated(journaldForward(), "systemd")},
		{ID: "baseline.logrotate-installed", Title: "Log rotation is installed", Severity: low, Platforms: debianLike, References: cis("6.1.1.3"),
			Rationale: "Without rotation, log files fill the disk.", Control: gated(packageInstalled("logrotate"), "rsyslog")},
		{ID: "baseline.rsyslog-enabled", Title: "rsyslog is enabled", Severity: low, References: cis("6.1.3.2"),
			Rationale: "An installed but disabled rsyslog keeps no logs.", Control: rsyslog(unitEnabled("rsyslog.service"))},
		{ID: "baseline.rsyslog-file-mode", Title: "rsyslog creates log files 0640 or stricter", Severity: low, References: cis("6.1.3.4"),
			Rationale: "Logs hold sensitive data and should not be world-readable.", Control: rsyslog(rsyslogFileMode())},
		{ID: "baseline.rsyslog-no-remote-input", Title: "rsyslog does not accept remote logs", Severity: low, References: cis("6.1.3.7"),
			Rationale: "Only a designated log host should listen for syslog.", Control: rsyslog(contentLacks([]string{"etc/rsyslog.conf", "etc/rsyslog.d/*.conf"}, `(?i)(^\s*\$(ModLoad|InputTCPServerRun|UDPServerRun)\s+(imtcp|imudp|\d+))|(module\(load="im(tcp|udp)"\))|(input\(type="im(tcp|udp)")`, "a network input"))},
		{ID: "baseline.log-files-perms", Title: "Log files are not world-readable or group-writable", Severity: low, References: cis("6.1.4.1"),
			Rationale: "Logs hold sensitive data.", Control: custom("chmod g-wx,o-rwx the listed files.", logPerms)},
		{ID: "baseline.auditd-installed", Title: "auditd is installed", Severity: medium, Platforms: debianLike, References: cis("6.2.1.1"),
			Rationale: "The audit subsystem records security-relevant events that ordinary logs miss.", Control: packageInstalled("auditd")},
		{ID: "baseline.auditd-enabled", Title: "auditd is enabled", Severity: medium, References: cis("6.2.1.2"),
			Rationale: "An installed but disabled auditd records nothing.", Control: auditd(unitEnabled("auditd.service"))},
		{ID: "baseline.audit-early", Title: "Processes started before auditd are audited (audit=1)", Severity: low, References: cis("6.2.1.3"),
			Rationale: "Without audit=1 on the kernel command line, processes started before auditd escape auditing.", Control: auditd(cmdlineHas("audit", "1"))},
		{ID: "baseline.audit-backlog", Title: "The audit backlog is large enough (audit_backlog_limit)", Severity: low, References: cis("6.2.1.4"),
			Rationale: "A small backlog loses events at boot.", Control: auditd(cmdlineHas("audit_backlog_limit"))},
		{ID: "baseline.auditd-max-log-file", Title: "auditd's log size is configured", Severity: low, References: cis("6.2.2.1"),
			Rationale: "max_log_file sets when the audit log rotates.", Control: auditd(contentMatches([]string{"etc/audit/auditd.conf"}, `^\s*max_log_file\s*=\s*\d+`, "sets max_log_file", fail("no /etc/audit/auditd.conf")))},
		{ID: "baseline.auditd-keep-logs", Title: "auditd keeps its logs (max_log_file_action = keep_logs)", Severity: low, References: cis("6.2.2.2"),
			Rationale: "Rotating audit logs away deletes evidence.", Control: auditd(contentMatches([]string{"etc/audit/auditd.conf"}, `(?i)^\s*max_log_file_action\s*=\s*keep_logs`, "sets max_log_file_action = keep_logs", fail("no /etc/audit/auditd.conf")))},
		{ID: "baseline.auditd-disk-full", Title: "auditd halts or single-users when the disk is full", Severity: low, References: cis("6.2.2.3"),
			Rationale: "Running on without auditing loses the events an attacker would want lost.", Control: auditd(contentMatches([]string{"etc/audit/auditd.conf"}, `(?i)^\s*disk_full_action\s*=\s*(halt|single)`, "sets disk_full_action = halt or single", fail("no /etc/audit/auditd.conf")))},
		{ID: "baseline.auditd-space-left", Title: "auditd warns when disk space runs low", Severity: low, References: cis("6.2.2.4"),
			Rationale: "A warning gives time to act before auditing stops.", Control: auditd(contentMatches([]string{"etc/audit/auditd.conf"}, `(?i)^\s*space_left_action\s*=\s*(email|exec|single|halt)`, "sets space_left_action = email, exec, single or halt", fail("no /etc/audit/auditd.conf")))},
		{ID: "baseline.aide-installed", Title: "AIDE is installed", Severity: low, Platforms: debianLike, References: cis("6.3.1"),
			Rationale: "File integrity checking detects changed binaries and configuration.", Control: packageInstalled("aide")},
		{ID: "baseline.aide-scheduled", Title: "AIDE checks run regularly", Severity: low, References: cis("6.3.2"),
			Rationale: "An integrity database is only useful when compared.", Control: aide(unitEnabled("dailyaidecheck.timer", "aidecheck.timer"))},
		{ID: "baseline.audit-config-perms", Title: "Audit configuration is 0640 or stricter", Severity: low, References: cis("6.2.4.5"),
			Rationale: "Users must not read or change what is audited.", Control: auditd(fileMode("etc/audit/auditd.conf", 0o640, "root"))},
	}
	type ar struct {
		id, title, cis string
		lines          []string
	}
	arch := "-F arch=b64"
	rules := []ar{
		{"sudoers", "changes to sudoers", "6.2.3.1", []string{"-w /etc/sudoers -p wa -k scope", "-w /etc/sudoers.d -p wa -k scope"}},
		{"user-emulation", "actions as another user", "6.2.3.2", []string{"-a always,exit " + arch + " -C euid!=uid -F auid!=unset -S execve -k user_emulation"}},
		{"sudo-log", "changes to the sudo log", "6.2.3.3", []string{"-w /var/log/sudo.log -p wa -k sudo_log_file"}},
		{"time-change", "changes of the date and time", "6.2.3.4", []string{"-a always,exit " + arch + " -S adjtimex,settimeofday,clock_settime -k time-change", "-w /etc/localtime -p wa -k time-change"}},
		{"network", "changes of the network environment", "6.2.3.5", []string{"-a always,exit " + arch + " -S sethostname,setdomainname -k system-locale", "-w /etc/hosts -p wa -k system-locale", "-w /etc/hostname -p wa -k system-locale"}},
		{"access", "unsuccessful file access", "6.2.3.7", []string{"-a always,exit " + arch + " -S creat,open,openat,truncate,ftruncate -F exit=-EACCES -F auid>=1000 -F auid!=unset -k access", "-a always,exit " + arch + " -S creat,open,openat,truncate,ftruncate -F exit=-EPERM -F auid>=1000 -F auid!=unset -k access"}},
		{"identity", "changes to users and groups", "6.2.3.8", []string{"-w /etc/group -p wa -k identity", "-w /etc/passwd -p wa -k identity", "-w /etc/gshadow -p wa -k identity", "-w /etc/shadow -p wa -k identity", "-w /etc/security/opasswd -p wa -k identity"}},
		{"perm-mod", "permission changes", "6.2.3.9", []string{"-a always,exit " + arch + " -S chmod,fchmod,fchmodat -F auid>=1000 -F auid!=unset -k perm_mod", "-a always,exit " + arch + " -S chown,fchown,lchown,fchownat -F auid>=1000 -F auid!=unset -k perm_mod"}},
		{"mounts", "mounts", "6.2.3.10", []string{"-a always,exit " + arch + " -S mount -F auid>=1000 -F auid!=unset -k mounts"}},
		{"session", "session starts", "6.2.3.11", []string{"-w /var/run/utmp -p wa -k session", "-w /var/log/wtmp -p wa -k session", "-w /var/log/btmp -p wa -k session"}},
		{"logins", "logins and logouts", "6.2.3.12", []string{"-w /var/log/lastlog -p wa -k logins", "-w /var/run/faillock -p wa -k logins"}},
		{"delete", "file deletions", "6.2.3.13", []string{"-a always,exit " + arch + " -S rename,unlink,unlinkat,renameat -F auid>=1000 -F auid!=unset -k delete"}},
		{"mac-policy", "changes to the MAC policy", "6.2.3.14", []string{"-w /etc/apparmor/ -p wa -k MAC-policy", "-w /etc/apparmor.d/ -p wa -k MAC-policy"}},
		{"kernel-modules", "kernel module loading", "6.2.3.19", []string{"-a always,exit " + arch + " -S init_module,finit_module,delete_module -F auid>=1000 -F auid!=unset -k kernel_modules"}},
		{"usermod", "usermod use", "6.2.3.18", []string{"-a always,exit -F path=/usr/sbin/usermod -F perm=x -F auid>=1000 -F auid!=unset -k usermod"}},
		{"immutable", "an immutable audit configuration", "6.2.3.20", []string{"-e 2"}},
	}
	for _, r := range rules {
		out = append(out, Rule{ID: "baseline.audit-rule-" + r.id, Title: "Audit rules record " + r.title, Severity: low, References: cis(r.cis),
			Rationale: "CIS asks the audit log to record " + r.title + ".", Control: auditd(auditRule(r.lines...))})
	}
	return out
}

func journaldPresent(s *State) check.Result {
	st, err := s.unit("systemd-journald.service")
	if err != nil {
		return errorf("%v", err)
	}
	if st.Masked {
		return fail("systemd-journald.service is masked", st.File)
	}
	if st.File == "" {
		return fail("no systemd-journald.service unit")
	}
	return pass("systemd-journald.service is present (static, started by systemd)", st.File)
}

func journaldStorage() Control {
	c := iniSetting("journald.conf", "Journal", "Storage", "auto", eq("persistent"), "persistent", "persistent")
	inner := c.Audit
	c.Audit = func(s *State) check.Result {
		r := inner(s)
		if r.Status == "fail" && strings.Contains(r.Message, "Storage=auto") {
			if info, err := s.Root.Stat("var/log/journal"); err == nil && info.IsDir() {
				return pass("journald Storage=auto and var/log/journal exists, so the journal is persistent", append(r.Evidence, "var/log/journal exists")...)
			}
		}
		return r
	}
	return c
}

func journaldForward() Control {
	return Control{
		Remedy: "Set ForwardToSyslog=yes (rsyslog installed) or no (journald only) in /etc/systemd/journald.conf.d/60-vouch.conf.",
		Audit: func(s *State) check.Result {
			got, _, err := s.installedAny("rsyslog", "syslog-ng-core")
			if err != nil {
				return errorf("%v", err)
			}
			v, set, err := s.iniValue("journald.conf", "Journal", "ForwardToSyslog")
			if err != nil {
				return errorf("%v", err)
			}
			val, src := v.Value, fmt.Sprintf("/%s:%d", v.File, v.Line)
			if !set {
				val, src = "no", "built-in default"
			}
			on := eq("yes", "true", "1", "on")(val)
			ev := []string{"ForwardToSyslog=" + val + " (" + src + ")"}
			if len(got) > 0 {
				ev = append(ev, "syslog daemon: "+strings.Join(got, ", "))
				if on {
					return pass("journald forwards to the installed syslog daemon", ev...)
				}
				return fail("a syslog daemon is installed but journald does not forward to it (ForwardToSyslog="+val+")", ev...)
			}
			if on {
				return fail("no syslog daemon is installed but journald forwards to syslog (ForwardToSyslog="+val+")", ev...)
			}
			return pass("journald is the log store and does not forward to syslog", ev...)
		},
		Fix: func(s *State, c *remediate.Changer) error {
			got, _, err := s.installedAny("rsyslog", "syslog-ng-core")
			if err != nil {
				return err
			}
			v := "no"
			if len(got) > 0 {
				v = "yes"
			}
			return c.SetINI("etc/systemd/journald.conf.d/60-vouch.conf", "Journal", "ForwardToSyslog", v)
		},
	}
}

func rsyslogFileMode() Control {
	c := contentMatches([]string{"etc/rsyslog.conf", "etc/rsyslog.d/*.conf"}, `^\s*\$FileCreateMode\s+0[0-6][0-4]0\b`, "sets $FileCreateMode 0640 or stricter", fail("no /etc/rsyslog.conf"))
	c.Remedy = "Set `$FileCreateMode 0640` in /etc/rsyslog.d/60-vouch.conf."
	c.Fix = func(s *State, ch *remediate.Changer) error {
		return ch.AppendLines("etc/rsyslog.d/60-vouch.conf", "# Set by vouch baseline remediate.", "$FileCreateMode 0640")
	}
	return c
}

func logPerms(s *State) check.Result {
	var bad []string
	n := 0
	err := walkRoot(s, "var/log", func(p string, mode uint32, uid, gid uint32) {
		n++
		if mode&0o137 != 0 && !strings.HasSuffix(p, "/lastlog") && !strings.HasSuffix(p, "/wtmp") && !strings.HasSuffix(p, "/btmp") {
			bad = append(bad, fmt.Sprintf("/%s %04o", p, mode))
		}
	}, true)
	if err != nil {
		return errorf("%v", err)
	}
	if len(bad) > 0 {
		return fail(fmt.Sprintf("%d of %d log files are readable by others or writable by their group", len(bad), n), bad...)
	}
	return pass(fmt.Sprintf("%d log files are 0640 or stricter", n))
}

// auditRule passes when every line is in the audit rules (etc/audit/rules.d/*.rules
// or etc/audit/audit.rules), compared with whitespace normalised.
func auditRule(want ...string) Control {
	return Control{
		Remedy: "Add the rules to /" + vouchAuditRules + " and run augenrules --load.",
		Audit: func(s *State) check.Result {
			have := map[string]bool{}
			files := s.expand([]string{"etc/audit/rules.d/*.rules", "etc/audit/audit.rules"})
			for _, f := range files {
				text, _, err := s.readText(f)
				if err != nil {
					return errorf("%v", err)
				}
				for _, l := range sysconf.Lines(text) {
					have[strings.Join(strings.Fields(l), " ")] = true
				}
			}
			var missing []string
			for _, w := range want {
				if !have[w] {
					missing = append(missing, w)
				}
			}
			if len(missing) > 0 {
				return fail(fmt.Sprintf("%d of %d audit rules missing: %s", len(missing), len(want), missing[0]), missing...)
			}
			return pass(fmt.Sprintf("all %d audit rules present", len(want)), want...)
		},
		Fix: func(s *State, c *remediate.Changer) error {
			if len(want) == 1 && want[0] == "-e 2" {
				// Making the configuration immutable must come last.
				return c.AppendLines("etc/audit/rules.d/99-vouch-finalize.rules", "## Added by vouch baseline remediate: make the audit configuration immutable.", want...)
			}
			return c.AppendLines(vouchAuditRules, "## Audit rules added by vouch baseline remediate (CIS Debian 12 6.2.3).", want...)
		},
	}
}
