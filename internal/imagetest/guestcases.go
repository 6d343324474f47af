package imagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/vm"
)

// The cases that run commands in the guest over SSH: provisioning, systemd,
// storage, network and time. The boot, console, kernel and reboot cases read
// the serial console (cases.go).

func sshLogin(ctx context.Context, env *Env) Outcome {
	start := time.Now()
	g, err := env.connect(ctx)
	if err != nil {
		var ve *vm.Error
		log := []string{}
		if errors.As(err, &ve) && len(ve.ConsoleTail) > 0 {
			log = append(log, "console tail:")
			log = append(log, ve.ConsoleTail...)
		}
		return fail("no SSH login as "+vm.GuestUser+": "+oneLine(err.Error()), log...)
	}
	res, err := env.run(ctx, "id -un")
	if err != nil {
		return fail("logged in, but a command failed: " + err.Error())
	}
	if got := strings.TrimSpace(res.Stdout); got != vm.GuestUser {
		return fail(fmt.Sprintf("logged in as %q, want %q", got, vm.GuestUser), prefixed("id -un", res)...)
	}
	return pass(fmt.Sprintf("logged in as %s after %s (host key %s)", vm.GuestUser, time.Since(start).Round(100*time.Millisecond), g.HostKey()))
}

// cloudInitResult is /run/cloud-init/result.json (cloud-init's
// cmd/main.py status_wrapper writes it when the final stage ends).
type cloudInitResult struct {
	V1 struct {
		Datasource string   `json:"datasource"`
		Errors     []string `json:"errors"`
	} `json:"v1"`
}

func cloudInitDone(ctx context.Context, env *Env) Outcome {
	const cmd = "cloud-init status --wait --long"
	res, err := env.run(ctx, cmd)
	if err != nil {
		return fail(err.Error())
	}
	log := prefixed(cmd, res)
	status, detail, inDetail := "", []string{}, false
	for _, l := range lines(res.Stdout) {
		if v, ok := strings.CutPrefix(l, "status: "); ok {
			status = strings.TrimSpace(v)
		}
		switch {
		case strings.HasPrefix(l, "detail:"):
			inDetail = true
		case inDetail && strings.TrimSpace(l) != "":
			detail = append(detail, strings.TrimSpace(l))
		}
	}
	if status != "done" || res.ExitCode != 0 {
		msg := fmt.Sprintf("cloud-init status is %q (exit %d), want done", status, res.ExitCode)
		if len(detail) > 0 {
			msg += ": " + oneLine(strings.Join(detail, "; "))
		}
		return fail(msg, log...)
	}
	const rcmd = "cat /run/cloud-init/result.json"
	rres, err := env.run(ctx, rcmd)
	if err != nil {
		return fail(err.Error(), log...)
	}
	log = append(log, prefixed(rcmd, rres)...)
	if rres.ExitCode != 0 {
		return fail("cloud-init says done but wrote no result.json (its final stage did not run)", log...)
	}
	var r cloudInitResult
	if err := json.Unmarshal([]byte(rres.Stdout), &r); err != nil {
		return fail("cloud-init's result.json does not parse: "+err.Error(), log...)
	}
	if len(r.V1.Errors) > 0 {
		return fail(fmt.Sprintf("cloud-init finished with %d error(s): %s", len(r.V1.Errors), oneLine(strings.Join(r.V1.Errors, "; "))), log...)
	}
	return pass("cloud-init done without errors (datasource "+r.V1.Datasource+")", log...)
}

func noFailedUnits(ctx context.Context, env *Env) Outcome {
	const wait = "systemctl is-system-running --wait"
	res, err := env.run(ctx, wait)
	if err != nil {
		return fail(err.Error())
	}
	state := strings.TrimSpace(res.Stdout)
	log := prefixed(wait, res)
	const list = "systemctl list-units --state=failed --plain --no-legend --no-pager"
	lres, err := env.run(ctx, list)
	if err != nil {
		return fail(err.Error(), log...)
	}
	log = append(log, prefixed(list, lres)...)
	if failed := FailedUnits(lres.Stdout); len(failed) > 0 {
		return fail(fmt.Sprintf("%d failed unit(s): %s (system state %s)", len(failed), strings.Join(failed, ", "), state), log...)
	}
	if state != "running" {
		return fail("system state is "+state+", want running", log...)
	}
	return pass("system running, no failed units", log...)
}

func rootReadWrite(ctx context.Context, env *Env) Outcome {
	const cmd = "findmnt -n -o SOURCE,FSTYPE,OPTIONS /"
	res, err := env.run(ctx, cmd)
	if err != nil {
		return fail(err.Error())
	}
	log := prefixed(cmd, res)
	f := strings.Fields(res.Stdout)
	if res.ExitCode != 0 || len(f) < 3 {
		return fail("findmnt could not describe /", log...)
	}
	opts := MountOptions(f[2])
	if !slices.Contains(opts, "rw") {
		return fail("/ ("+f[0]+", "+f[1]+") is mounted "+f[2], log...)
	}
	const probe = "sh -c 'touch /.vouch-rw-probe && rm /.vouch-rw-probe'"
	pres, err := env.sudo(ctx, probe)
	if err != nil {
		return fail(err.Error(), log...)
	}
	log = append(log, prefixed("sudo -n "+probe, pres)...)
	if pres.ExitCode != 0 {
		return fail("/ is mounted rw but root cannot write to it", log...)
	}
	return pass("/ ("+f[0]+", "+f[1]+") is read-write", log...)
}

func networkDHCP(ctx context.Context, env *Env) Outcome {
	const cmd = "ip -4 -o addr show scope global"
	res, err := env.run(ctx, cmd)
	if err != nil {
		return fail(err.Error())
	}
	log := prefixed(cmd, res)
	const rcmd = "ip -4 route show default"
	rres, err := env.run(ctx, rcmd)
	if err != nil {
		return fail(err.Error(), log...)
	}
	log = append(log, prefixed(rcmd, rres)...)
	dyn, static := DynamicAddresses(res.Stdout)
	switch {
	case len(dyn) == 0 && len(static) == 0:
		return fail("no global IPv4 address: the network is not up", log...)
	case len(dyn) == 0:
		return fail("IPv4 addresses are static ("+strings.Join(static, ", ")+"), not leased by DHCP", log...)
	case strings.TrimSpace(rres.Stdout) == "":
		return fail("DHCP address "+strings.Join(dyn, ", ")+" but no default route", log...)
	}
	return pass("DHCP lease "+strings.Join(dyn, ", ")+", default route "+strings.TrimSpace(lines(rres.Stdout)[0]), log...)
}

func networkDNS(ctx context.Context, env *Env) Outcome {
	name := env.cfg.DNSName
	cmd := "getent ahostsv4 " + name
	res, err := env.run(ctx, cmd)
	if err != nil {
		return fail(err.Error())
	}
	log := prefixed(cmd, res)
	const servers = "(resolvectl dns 2>/dev/null || grep '^nameserver' /etc/resolv.conf)"
	sres, err := env.run(ctx, servers)
	if err == nil {
		log = append(log, prefixed(servers, sres)...)
	}
	if res.ExitCode == 0 && strings.TrimSpace(res.Stdout) != "" {
		return pass(name+" resolves to "+strings.Fields(res.Stdout)[0], log...)
	}
	// The guest's DNS goes through QEMU's user-mode network to the host's
	// resolver: a host that cannot resolve the name says nothing about the
	// image.
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, herr := net.DefaultResolver.LookupHost(hctx, name); herr != nil {
		return skip("the host cannot resolve "+name+" either ("+herr.Error()+"): no upstream DNS to test against", log...)
	}
	return fail(name+" does not resolve in the guest (the host resolves it)", log...)
}

func sshdRunning(ctx context.Context, env *Env) Outcome {
	const cmd = "systemctl is-active ssh.service sshd.service"
	res, err := env.run(ctx, cmd)
	if err != nil {
		return fail(err.Error())
	}
	log := prefixed(cmd, res)
	for _, l := range lines(res.Stdout) {
		if strings.TrimSpace(l) == "active" {
			return pass("sshd is active", log...)
		}
	}
	return fail("neither ssh.service nor sshd.service is active", log...)
}

func timeSync(ctx context.Context, env *Env) Outcome {
	services := []string{"systemd-timesyncd.service", "chrony.service", "chronyd.service", "ntp.service", "ntpsec.service", "ntpd.service"}
	cmd := "systemctl is-active " + strings.Join(services, " ")
	res, err := env.run(ctx, cmd)
	if err != nil {
		return fail(err.Error())
	}
	log := prefixed(cmd, res)
	const tcmd = "timedatectl show -p NTP -p NTPSynchronized"
	tres, err := env.run(ctx, tcmd)
	if err != nil {
		return fail(err.Error(), log...)
	}
	log = append(log, prefixed(tcmd, tres)...)
	active := ""
	for i, l := range lines(res.Stdout) {
		if strings.TrimSpace(l) == "active" && i < len(services) && active == "" {
			active = services[i]
		}
	}
	if active == "" {
		return fail("no time synchronisation service is active ("+strings.Join(services, ", ")+")", log...)
	}
	ntp := strings.Contains(tres.Stdout, "NTP=yes")
	if !ntp && strings.HasPrefix(active, "systemd-timesyncd") {
		return fail(active+" is active but timedated reports NTP=no", log...)
	}
	msg := active + " is active"
	if strings.Contains(tres.Stdout, "NTPSynchronized=yes") {
		msg += " and the clock is synchronised"
	} else {
		msg += " (not synchronised yet: no NTP server reachable from the test network is needed for this case)"
	}
	return pass(msg, log...)
}

func noSwap(ctx context.Context, env *Env) Outcome {
	const cmd = "cat /proc/swaps"
	res, err := env.run(ctx, cmd)
	if err != nil {
		return fail(err.Error())
	}
	log := prefixed(cmd, res)
	if s := Swaps(res.Stdout); len(s) > 0 {
		return fail("swap is active: "+strings.Join(s, ", "), log...)
	}
	return pass("no swap is active", log...)
}
