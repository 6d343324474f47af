package vm

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
)

// qemuArgs is QEMU's command line for the VM. Everything QEMU creates goes into
// dir; nothing is displayed and nothing reads stdin.
func qemuArgs(cfg Config, accel, dir, code, vars, overlay, seed string, port int) []string {
	args := []string{
		"-name", "vouch-vm",
		"-nodefaults", "-no-user-config",
		"-m", fmt.Sprint(cfg.MemoryMiB),
		"-smp", fmt.Sprint(cfg.CPUs),
		"-display", "none",
		"-rtc", "base=utc",
		// Start paused: Start connects QMP, then sends "cont".
		"-S",
		"-chardev", "socket,id=qmp,path=" + qemuPath(filepath.Join(dir, "qmp.sock")) + ",server=on,wait=off",
		"-mon", "chardev=qmp,mode=control",
		"-chardev", "file,id=serial0,path=" + qemuPath(filepath.Join(dir, "serial.log")),
		"-serial", "chardev:serial0",
	}
	sp := probeSpec{boot: cfg.Firmware.Boot, secureBoot: cfg.Firmware.SecureBoot && cfg.Firmware.Boot == UEFI}
	args = append(args, machineArgs(sp, accel, code, vars)...)
	// The overlay takes every write; cache=unsafe because it is thrown away
	// (no flushes to wait for).
	args = append(args,
		"-drive", "if=none,id=disk0,format=qcow2,cache=unsafe,file="+qemuPath(overlay),
		"-device", "virtio-blk-pci,drive=disk0")
	if seed != "" {
		args = append(args,
			"-drive", "if=none,id=seed,format=raw,readonly=on,file="+qemuPath(seed),
			"-device", "virtio-blk-pci,drive=seed")
	}
	// User-mode networking: DHCP and DNS from QEMU's slirp, SSH reachable only
	// on the host's loopback. romfile= drops iPXE's option ROM: a disk that
	// does not boot then fails fast instead of trying PXE first.
	args = append(args,
		"-netdev", fmt.Sprintf("user,id=net0,hostfwd=tcp:127.0.0.1:%d-:22", port),
		"-device", "virtio-net-pci,netdev=net0,romfile=",
		"-device", "virtio-rng-pci")
	if cfg.Firmware.Boot == UEFI {
		// OVMF's own network stack would otherwise add PXE and HTTP boot
		// options (IPv4 and IPv6) after the disk, each waiting for DHCP offers
		// for minutes under TCG before "No bootable option" ends a failed
		// boot. Knobs read from fw_cfg by OvmfPkg (RUNTIME_CONFIG.md;
		// OvmfPkg/Library/PxeBcPcdProducerLib); unknown ones are ignored.
		for _, knob := range []string{"IPv4PXESupport", "IPv6PXESupport", "IPv4Support", "IPv6Support"} {
			args = append(args, "-fw_cfg", "name=opt/org.tianocore/"+knob+",string=no")
		}
	}
	return args
}

// machineArgs are the machine, accelerator and firmware options, shared by
// the VM and the accelerator probe so that the probe proves what the VM
// needs.
func machineArgs(sp probeSpec, accel, code, vars string) []string {
	machine := "q35"
	if sp.boot == UEFI && sp.secureBoot {
		// Secure Boot OVMF keeps its variables behind SMM so the OS cannot
		// write them directly (OvmfPkg/README "SMM support"): q35 with SMM and
		// the flash's secure property on.
		machine += ",smm=on"
	}
	args := []string{"-machine", machine}
	if accel == "kvm" {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		// A bounded translation cache (QEMU's default is 1 GiB in system
		// mode). After a reset (systemctl reboot, QMP system_reset) the
		// firmware writes into pages that still hold the previous OS's
		// translated code, and with a large cache every such write goes
		// through QEMU 7.2's slow invalidation path (page_collection_lock
		// dominates a perf profile): on a loaded 2-core host OVMF then took
		// minutes to reach its boot manager, and shim longer still, so a
		// guest reboot timed out. With 128 MiB the same QMP reset of the
		// console fixture reached BdsDxe in 28 s instead of 58 s, Linux in
		// 74 s instead of 184 s, with an unchanged first boot (both runs
		// side by side on the same host).
		args = append(args, "-accel", "tcg,tb-size=128")
	}
	if sp.boot == UEFI {
		if sp.secureBoot {
			args = append(args, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		args = append(args,
			"-global", "ICH9-LPC.disable_s3=1",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+qemuPath(code),
			"-drive", "if=pflash,format=raw,unit=1,file="+qemuPath(vars))
	}
	return args
}

// qemuPath escapes a path for QEMU's option syntax (a comma is doubled).
func qemuPath(p string) string { return strings.ReplaceAll(p, ",", ",,") }

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago: the
// kernel picks it for a listener that is closed at once. Another process may
// take it before QEMU binds it; Start retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
