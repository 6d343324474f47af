package baseline

import (
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/finding"
)

// ---- 5.1: SSH server ---------------------------------------------------------------------

func sshRules() []Rule {
	weakCiphers := []string{"3des-cbc", "aes128-cbc", "aes192-cbc", "aes256-cbc", "rijndael-cbc@lysator.liu.se", "blowfish-cbc", "cast128-cbc", "arcfour", "arcfour128", "arcfour256"}
	weakMACs := []string{"hmac-md5", "hmac-md5-96", "hmac-ripemd160", "hmac-sha1-96", "umac-64@openssh.com", "hmac-md5-etm@openssh.com", "hmac-md5-96-etm@openssh.com", "hmac-ripemd160-etm@openssh.com", "hmac-sha1-96-etm@openssh.com", "umac-64-etm@openssh.com"}
	weakKex := []string{"diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1"}
	strongCiphers := "aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr,chacha20-poly1305@openssh.com"
	strongMACs := "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256"
	strongKex := "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha256,ecdh-sha2-nistp521,ecdh-sha2-nistp384,ecdh-sha2-nistp256"
	type o struct {
		id, key, cis string
		ok           sshdCheck
		expect, fix  string
		sev          int
		why          string
	}
	opts := []o{
		{"ciphers", "Ciphers", "5.1.6", sshdNoneOf(weakCiphers...), "no CBC or arcfour ciphers", strongCiphers, 2, "CBC-mode and RC4 ciphers have practical attacks"},
		{"macs", "MACs", "5.1.15", sshdNoneOf(weakMACs...), "no MD5, RIPEMD-160, 96-bit or 64-bit MACs", strongMACs, 2, "weak MACs let an attacker forge or tamper with packets"},
		{"kex", "KexAlgorithms", "5.1.12", sshdNoneOf(weakKex...), "no SHA-1 or group1 key exchange", strongKex, 2, "SHA-1 and 1024-bit Diffie-Hellman key exchange are breakable"},
		{"permit-root-login", "PermitRootLogin", "5.1.20", sshdIs("no"), "no", "no", 3, "direct root login leaves no trace of who logged in and exposes the most valuable account"},
		{"password-authentication", "PasswordAuthentication", "", sshdIs("no"), "no", "no", 2, "passwords can be guessed; keys cannot"},
		{"permit-empty-passwords", "PermitEmptyPasswords", "5.1.19", sshdIs("no"), "no", "no", 3, "an account without a password must not be reachable over the network"},
		{"hostbased-authentication", "HostbasedAuthentication", "5.1.10", sshdIs("no"), "no", "no", 2, "host-based trust lets one compromised host log into others"},
		{"ignore-rhosts", "IgnoreRhosts", "5.1.11", sshdIs("yes"), "yes", "yes", 2, ".rhosts files grant access without a password"},
		{"x11-forwarding", "X11Forwarding", "", sshdIs("no"), "no", "no", 1, "X11 forwarding exposes the client's display to the server"},
		{"max-auth-tries", "MaxAuthTries", "5.1.16", sshdAtMost(4), "4 or fewer", "4", 1, "limiting attempts per connection slows password guessing"},
		{"max-startups", "MaxStartups", "5.1.18", maxStartupsOK, "10:30:60 or stricter", "10:30:60", 1, "limiting unauthenticated connections resists connection floods"},
		{"max-sessions", "MaxSessions", "5.1.17", sshdAtMost(10), "10 or fewer", "10", 1, "limiting sessions per connection limits resource abuse"},
		{"login-grace-time", "LoginGraceTime", "5.1.13", graceOK, "1 to 60 seconds", "60", 1, "a short grace time limits unauthenticated connections held open"},
		{"client-alive-interval", "ClientAliveInterval", "5.1.7", positive, "more than 0", "300", 1, "idle sessions are closed only when the server probes them"},
		{"client-alive-count-max", "ClientAliveCountMax", "5.1.7", positive, "more than 0", "3", 1, "ClientAliveCountMax 0 disables the idle probe"},
		{"banner", "Banner", "5.1.5", notNone, "a banner file", "/etc/issue.net", 0, "a legal notice is shown before authentication"},
		{"log-level", "LogLevel", "5.1.14", sshdIs("INFO", "VERBOSE"), "INFO or VERBOSE", "VERBOSE", 1, "logins and key fingerprints must be logged"},
		{"use-pam", "UsePAM", "5.1.22", sshdIs("yes"), "yes", "yes", 1, "PAM applies account and session policy to SSH logins"},
		{"disable-forwarding", "DisableForwarding", "5.1.8", sshdIs("yes"), "yes", "yes", 1, "forwarding turns the server into a tunnel past the firewall"},
		{"allow-tcp-forwarding", "AllowTcpForwarding", "", sshdIs("no"), "no", "no", 1, "TCP forwarding tunnels traffic past the firewall"},
		{"allow-agent-forwarding", "AllowAgentForwarding", "", sshdIs("no"), "no", "no", 1, "a forwarded agent can be used by root on the server"},
		{"gssapi-authentication", "GSSAPIAuthentication", "5.1.9", sshdIs("no"), "no", "no", 1, "GSSAPI adds attack surface where Kerberos is not used"},
		{"permit-user-environment", "PermitUserEnvironment", "5.1.21", sshdIs("no"), "no", "no", 2, "user-set environment can bypass restrictions (LD_PRELOAD)"},
		{"strict-modes", "StrictModes", "", sshdIs("yes"), "yes", "yes", 1, "sshd must refuse keys in files others can write"},
		{"protocol", "Protocol", "", sshdIs("2"), "2", "", 2, "SSH protocol 1 is broken"},
	}
	var out []Rule
	for _, x := range opts {
		r := Rule{ID: "baseline.sshd-" + x.id, Title: "sshd " + x.key + " is " + x.expect, Severity: sevOf(x.sev),
			Rationale: strings.ToUpper(x.why[:1]) + x.why[1:] + ".", Control: sshdOption(x.key, x.ok, x.expect, x.fix)}
		if x.cis != "" {
			r.References = cis(x.cis)
		}
		out = append(out, r)
	}
	out = append(out,
		Rule{ID: "baseline.sshd-config-perms", Title: "/etc/ssh/sshd_config is 0600 root:root", Severity: medium, References: cis("5.1.1"),
			Rationale: "The server configuration must not be readable or writable by users.",
			Control:   gatedSSH(fileMode("etc/ssh/sshd_config", 0o600, "root", "root"))},
		Rule{ID: "baseline.sshd-private-keys-perms", Title: "SSH host private keys are 0600 root", Severity: high, References: cis("5.1.2"),
			Rationale: "A readable host key lets anyone impersonate the server.",
			Control:   gatedSSH(globMode("etc/ssh/ssh_host_*_key", 0o600, "root", "root", "ssh_keys"))},
		Rule{ID: "baseline.sshd-public-keys-perms", Title: "SSH host public keys are 0644 root", Severity: low, References: cis("5.1.3"),
			Rationale: "A writable public key could be replaced.",
			Control:   gatedSSH(globMode("etc/ssh/ssh_host_*_key.pub", 0o644, "root", "root"))},
		Rule{ID: "baseline.sshd-access-limited", Title: "sshd limits which users may log in", Severity: low, References: cis("5.1.4"),
			Rationale: "AllowUsers/AllowGroups/DenyUsers/DenyGroups restrict SSH to the accounts that need it.",
			Control:   gatedSSH(custom("Add AllowGroups (or AllowUsers) to /etc/ssh/sshd_config.", sshdAccessLimited))},
	)
	return out
}

func gatedSSH(c Control) Control {
	c.Gate, c.GateFiles = sshdGate, sshdGateFiles
	return c
}

func sevOf(n int) finding.Severity {
	return []finding.Severity{info, low, medium, high}[n]
}

func maxStartupsOK(v string) bool {
	p := strings.Split(v, ":")
	lim := []int{10, 30, 60}
	for i, x := range p {
		n, err := strconv.Atoi(x)
		if err != nil || i >= 3 {
			return false
		}
		if i == 1 {
			if n < lim[i] {
				return false
			}
			continue
		}
		if n > lim[i] {
			return false
		}
	}
	return len(p) == 3
}

func graceOK(v string) bool {
	n, err := parseSSHTime(v)
	return err == nil && n >= 1 && n <= 60
}

func positive(v string) bool {
	n, err := parseSSHTime(v)
	return err == nil && n > 0
}

func notNone(v string) bool { return v != "" && !strings.EqualFold(v, "none") }

// parseSSHTime reads sshd's time format (seconds, or 1m30s).
func parseSSHTime(v string) (int, error) {
	total, cur := 0, ""
	for _, r := range strings.ToLower(v) {
		if r >= '0' && r <= '9' {
			cur += string(r)
			continue
		}
		n, err := strconv.Atoi(cur)
		if err != nil {
			return 0, err
		}
		mult := map[rune]int{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}[r]
		if mult == 0 {
			return 0, strconv.ErrSyntax
		}
		total += n * mult
		cur = ""
	}
	if cur != "" {
		n, err := strconv.Atoi(cur)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// ---- 5.2 and 5.3: sudo and PAM ------------------------------------------------------------------

func accessRules() []Rule {
	pamPassword := []string{"etc/pam.d/common-password"}
	pamAuth := []string{"etc/pam.d/common-auth"}
	pamAccount := []string{"etc/pam.d/common-account"}
	pwq := []string{"etc/security/pwquality.conf", "etc/security/pwquality.conf.d/50-vouch.conf"}
	noPAM := fail("no /etc/pam.d/common-* (PAM is not configured the Debian way)")
	pwqGate := func(c Control) Control { return gated(c, "libpam-pwquality") }
	sudoGate := func(c Control) Control { return gated(c, "sudo", "sudo-ldap") }
	sudoers := []string{"etc/sudoers"}
	rules := []Rule{
		{ID: "baseline.sudo-installed", Title: "sudo is installed", Severity: low, Platforms: debianLike, References: cis("5.2.1"),
			Rationale: "sudo gives administrators privileges per command, with a log, instead of a shared root password.",
			Control:   packageInstalled("sudo", "sudo-ldap")},
		{ID: "baseline.sudo-use-pty", Title: "sudo runs commands in a pseudo-terminal", Severity: low, References: cis("5.2.2"),
			Rationale: "use_pty keeps a command run with sudo from injecting input into the user's terminal after sudo exits.",
			Control:   sudoGate(sudoersHas(`^\s*Defaults\s+.*\buse_pty\b`, "Defaults use_pty"))},
		{ID: "baseline.sudo-logfile", Title: "sudo logs to its own file", Severity: low, References: cis("5.2.3"),
			Rationale: "A dedicated sudo log makes privileged commands easy to audit.",
			Control:   sudoGate(sudoersHas(`^\s*Defaults\s+.*\blogfile\s*=`, `Defaults logfile="/var/log/sudo.log"`))},
		{ID: "baseline.sudo-nopasswd", Title: "sudo requires a password (no NOPASSWD)", Severity: medium, References: cis("5.2.4"),
			Rationale: "NOPASSWD lets anyone at an unlocked session run commands as root.",
			Control:   sudoGate(contentLacks(append(sudoers, "etc/sudoers.d/*"), `NOPASSWD`, "NOPASSWD rule"))},
		{ID: "baseline.sudo-authenticate", Title: "sudo re-authentication is not disabled", Severity: medium, References: cis("5.2.5"),
			Rationale: "!authenticate lets sudo run without any password.",
			Control:   sudoGate(contentLacks(append(sudoers, "etc/sudoers.d/*"), `!authenticate`, "!authenticate"))},
		{ID: "baseline.su-restricted", Title: "su is restricted to a group (pam_wheel)", Severity: low, References: cis("5.2.7"),
			Rationale: "pam_wheel limits who may become root with su.",
			Control:   pamUses([]string{"etc/pam.d/su"}, pamWant{"auth", "pam_wheel.so", wheelGroup}, "requires pam_wheel.so use_uid group=", na("no /etc/pam.d/su"))},
		{ID: "baseline.pam-runtime-installed", Title: "libpam-runtime is installed", Severity: low, Platforms: debianLike, References: cis("5.3.1.1"),
			Rationale: "pam-auth-update (libpam-runtime) maintains the common PAM stacks.", Control: packageInstalled("libpam-runtime")},
		{ID: "baseline.pam-modules-installed", Title: "libpam-modules is installed", Severity: low, Platforms: debianLike, References: cis("5.3.1.2"),
			Rationale: "libpam-modules provides pam_faillock and pam_pwhistory.", Control: packageInstalled("libpam-modules")},
		{ID: "baseline.pam-pwquality-installed", Title: "libpam-pwquality is installed", Severity: medium, Platforms: debianLike, References: cis("5.3.1.3"),
			Rationale: "pam_pwquality enforces password strength.", Control: packageInstalled("libpam-pwquality")},
		{ID: "baseline.pam-unix-enabled", Title: "pam_unix is in the common PAM stacks", Severity: medium, References: cis("5.3.2.1"),
			Rationale: "pam_unix checks local passwords and their aging.", Control: pamUses(pamAuth, pamWant{"auth", "pam_unix.so", nil}, "uses pam_unix.so", noPAM)},
		{ID: "baseline.pam-faillock-enabled", Title: "pam_faillock locks accounts after failed logins", Severity: medium, References: cis("5.3.2.2"),
			Rationale: "Locking an account after repeated failures stops online password guessing.", Control: pamUses(pamAuth, pamWant{"auth", "pam_faillock.so", nil}, "uses pam_faillock.so", noPAM)},
		{ID: "baseline.pam-faillock-account", Title: "pam_faillock is in the account stack", Severity: low, References: cis("5.3.2.2"),
			Rationale: "The account phase of pam_faillock denies locked accounts.", Control: pamUses(pamAccount, pamWant{"account", "pam_faillock.so", nil}, "uses pam_faillock.so", noPAM)},
		{ID: "baseline.pam-pwquality-enabled", Title: "pam_pwquality checks new passwords", Severity: medium, References: cis("5.3.2.3"),
			Rationale: "Without pam_pwquality in the password stack any password is accepted.", Control: pamUses(pamPassword, pamWant{"password", "pam_pwquality.so", nil}, "uses pam_pwquality.so", noPAM)},
		{ID: "baseline.pam-pwhistory-enabled", Title: "pam_pwhistory prevents password reuse", Severity: low, References: cis("5.3.2.4"),
			Rationale: "Remembering old passwords stops users cycling back to a compromised one.", Control: pamUses(pamPassword, pamWant{"password", "pam_pwhistory.so", nil}, "uses pam_pwhistory.so", noPAM)},
		{ID: "baseline.faillock-deny", Title: "faillock locks after 5 or fewer failures", Severity: low, References: cis("5.3.3.1.1"),
			Rationale: "A low deny count limits guessing.", Control: gated(confNumber([]string{"etc/security/faillock.conf"}, "deny", "<=", 5, "deny = 5"), "libpam-modules")},
		{ID: "baseline.faillock-unlock-time", Title: "faillock keeps accounts locked 900 s or more (or until unlocked)", Severity: low, References: cis("5.3.3.1.2"),
			Rationale: "A short unlock time lets guessing resume quickly.", Control: gated(confUnlockTime(), "libpam-modules")},
		{ID: "baseline.faillock-root", Title: "faillock also applies to root", Severity: low, References: cis("5.3.3.1.3"),
			Rationale: "root is the most attacked account.", Control: gated(contentMatches([]string{"etc/security/faillock.conf"}, `^\s*(even_deny_root|root_unlock_time\s*=\s*\d+)`, "sets even_deny_root or root_unlock_time", fail("no /etc/security/faillock.conf")), "libpam-modules")},
		{ID: "baseline.pwquality-difok", Title: "New passwords differ from the old in 2 or more characters", Severity: low, References: cis("5.3.3.2.1"),
			Rationale: "A new password one character away from the old one is no change.", Control: pwqGate(confNumber(pwq, "difok", ">=", 2, "difok = 2"))},
		{ID: "baseline.pwquality-minlen", Title: "Passwords are 14 or more characters", Severity: medium, References: cis("5.3.3.2.2"),
			Rationale: "Length is the strongest defence against guessing.", Control: pwqGate(confNumber(pwq, "minlen", ">=", 14, "minlen = 14"))},
		{ID: "baseline.pwquality-complexity", Title: "Passwords need characters of several classes", Severity: low, References: cis("5.3.3.2.3"),
			Rationale: "Character classes widen the search space.", Control: pwqGate(confNumber(pwq, "minclass", ">=", 3, "minclass = 3"))},
		{ID: "baseline.pwquality-maxrepeat", Title: "Passwords repeat a character at most 3 times", Severity: low, References: cis("5.3.3.2.4"),
			Rationale: "Long runs of one character are guessed first.", Control: pwqGate(confNumberNonZero(pwq, "maxrepeat", 3, "maxrepeat = 3"))},
		{ID: "baseline.pwquality-maxsequence", Title: "Passwords hold sequences of at most 3 characters", Severity: low, References: cis("5.3.3.2.5"),
			Rationale: "Sequences such as 12345 or abcde are guessed first.", Control: pwqGate(confNumberNonZero(pwq, "maxsequence", 3, "maxsequence = 3"))},
		{ID: "baseline.pwquality-dictcheck", Title: "Passwords are checked against a dictionary", Severity: low, References: cis("5.3.3.2.6"),
			Rationale: "Dictionary words are guessed first.", Control: pwqGate(contentLacks(pwq, `^\s*dictcheck\s*=\s*0`, "dictcheck = 0"))},
		{ID: "baseline.pwquality-enforcing", Title: "Password quality is enforced, not only warned about", Severity: low, References: cis("5.3.3.2.7"),
			Rationale: "enforcing = 0 only warns.", Control: pwqGate(contentLacks(pwq, `^\s*enforcing\s*=\s*0`, "enforcing = 0"))},
		{ID: "baseline.pwquality-root", Title: "Password quality also applies to root", Severity: low, References: cis("5.3.3.2.8"),
			Rationale: "root's password deserves the same rules.", Control: pwqGate(contentMatches(pwq, `^\s*enforce_for_root\b`, "sets enforce_for_root", fail("no /etc/security/pwquality.conf")))},
		{ID: "baseline.pwhistory-remember", Title: "pam_pwhistory remembers 24 or more passwords", Severity: low, References: cis("5.3.3.3.1"),
			Rationale: "A short history lets users cycle back to an old password.", Control: pamUses(pamPassword, pamWant{"", "pam_pwhistory.so", remembers(24)}, "sets pam_pwhistory.so remember=24 or more", noPAM)},
		{ID: "baseline.pwhistory-root", Title: "pam_pwhistory also applies to root", Severity: low, References: cis("5.3.3.3.2"),
			Rationale: "root's password history matters too.", Control: pamUses(pamPassword, pamWant{"", "pam_pwhistory.so", hasArg("enforce_for_root")}, "sets pam_pwhistory.so enforce_for_root", noPAM)},
		{ID: "baseline.pam-unix-nullok", Title: "pam_unix does not accept empty passwords (no nullok)", Severity: high, References: cis("5.3.3.4.1"),
			Rationale: "nullok lets accounts with an empty password field log in.", Control: pamLacks([]string{"etc/pam.d/common-auth", "etc/pam.d/common-password", "etc/pam.d/common-account", "etc/pam.d/common-session"}, pamWant{"", "pam_unix.so", hasArg("nullok")}, "pam_unix.so with nullok")},
		{ID: "baseline.pam-unix-remember", Title: "pam_unix does not keep password history (remember)", Severity: low, References: cis("5.3.3.4.2"),
			Rationale: "pam_unix's remember stores old hashes in a weaker format; pam_pwhistory should do it.", Control: pamLacks(pamPassword, pamWant{"", "pam_unix.so", hasArg("remember")}, "pam_unix.so with remember=")},
		{ID: "baseline.pam-unix-hash", Title: "pam_unix hashes passwords with yescrypt or SHA-512", Severity: high, References: cis("5.3.3.4.3"),
			Rationale: "MD5 and DES crypt hashes are cracked quickly.", Control: pamUses(pamPassword, pamWant{"password", "pam_unix.so", hasArg("sha512", "yescrypt")}, "sets pam_unix.so sha512 or yescrypt", noPAM)},
		{ID: "baseline.pam-unix-authtok", Title: "pam_unix uses the password already checked (use_authtok)", Severity: low, References: cis("5.3.3.4.4"),
			Rationale: "use_authtok makes pam_unix set the password that pam_pwquality approved.", Control: pamUses(pamPassword, pamWant{"password", "pam_unix.so", hasArg("use_authtok")}, "sets pam_unix.so use_authtok", noPAM)},
	}
	return rules
}

func sudoersHas(re, line string) Control {
	c := contentMatches([]string{"etc/sudoers", "etc/sudoers.d/*"}, re, "sets "+line, fail("no /etc/sudoers"))
	c.Remedy = "Add `" + line + "` with visudo -f /etc/sudoers.d/60-vouch."
	return c
}
