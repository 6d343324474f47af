package cli

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/vm"
)

func newWorkerCmd() *cobra.Command {
	var (
		cf                    clientFlags
		name, certs, workDir  string
		cacheDir              string
		cacheMax              int64
		accel                 string
		cores, memory, diskMB int
		once                  bool
		poll, bootTimeout     time.Duration
	)
	c := &cobra.Command{
		Use:   "worker --server URL --token WORKER",
		Short: "Run image-validation jobs from a vouch server",
		Long: `worker claims jobs from a vouch server (a token from 'vouch token create --role
worker') and runs their cases under QEMU as 'vouch test' does, sending each case's
status, the runner's progress and the serial console while it runs.

The worker advertises what it has — KVM or software emulation (a probe boot decides),
cores, memory, free disk in --work-dir — and takes only jobs that fit. It holds a
job under a lease it renews every two seconds; if it dies, the lease expires and the
server queues the job again or fails it with the reason. If it cannot reach the
server for a whole lease it stops the job itself, so no job runs twice at once. A
cancel reaches it on its next heartbeat and the VM is killed.

A job's image is a path the worker can read (shared storage), or an image the
server keeps (an upload, or a URL it fetched): the worker downloads that from the
server with its token, resuming a cut-off download, checks its SHA-256 and keeps it
by digest in --cache-dir, removing the least recently used images (those no job
uses) when the cache grows past --cache-max. Firmware profiles and the firmware matrix need the
Microsoft certificates (--certs DIR).`,
		Example: `  vouch worker --server http://127.0.0.1:8443 --token "$(cat worker.token)" --certs ./certs`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if cacheMax < 0 {
				return usageErrorf("--cache-max %d: a size in MiB, 0 for no bound", cacheMax)
			}
			switch accel {
			case "auto", "kvm", "tcg":
			default:
				return usageErrorf("unknown accelerator %q (want auto, kvm or tcg)", accel)
			}
			cl, err := cf.client()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if name == "" {
				h, _ := os.Hostname()
				name = fmt.Sprintf("%s-%d", h, os.Getpid())
			}
			caps := store.Caps{Worker: name, Cores: cores, MemoryMiB: memory, DiskMiB: diskMB}
			if caps.Cores <= 0 {
				caps.Cores = runtime.NumCPU()
			}
			if caps.MemoryMiB <= 0 {
				caps.MemoryMiB = memAvailableMiB()
			}
			if caps.DiskMiB <= 0 {
				caps.DiskMiB = freeDiskMiB(workDir)
			}
			switch accel {
			case "kvm":
				caps.KVM = true
			case "auto":
				caps.KVM = vm.ProbeKVM(ctx, vm.Firmware{Boot: vm.UEFI, SecureBoot: true}, workDir).Accel == "kvm"
			}
			mode := "TCG"
			if caps.KVM {
				mode = "KVM"
			}
			fmt.Fprintf(c.ErrOrStderr(), "vouch worker %s: %s, %d cores, %d MiB memory, %d MiB free disk; polling %s\n",
				name, mode, caps.Cores, caps.MemoryMiB, caps.DiskMiB, cf.server)
			runAccel := ""
			if accel != "auto" {
				runAccel = accel
			}
			w := &jobs.Worker{Server: cl, Caps: caps, Runner: jobs.VMRunner{CertDir: certs, WorkDir: workDir, Accel: runAccel, BootTimeout: bootTimeout},
				Poll: poll, CacheDir: cacheDir, CacheMaxBytes: cacheMax << 20, Log: c.ErrOrStderr()}
			return w.Run(ctx, once)
		},
	}
	cf.register(c)
	fl := c.Flags()
	fl.StringVar(&name, "name", "", "worker name (default HOSTNAME-PID)")
	fl.StringVar(&certs, "certs", "", "directory of the Microsoft certificates for firmware profiles and the matrix")
	fl.StringVar(&workDir, "work-dir", "", "directory for the VMs' temporary files (default: the system's)")
	fl.StringVar(&cacheDir, "cache-dir", "", "directory keeping images downloaded from the server, by digest (default: the user's cache directory, vouch/images)")
	fl.Int64Var(&cacheMax, "cache-max", 20<<10, "size bound of --cache-dir in MiB (0: none)")
	fl.StringVar(&accel, "accel", "auto", "auto (probe KVM), kvm or tcg")
	fl.IntVar(&cores, "cores", 0, "cores to advertise (default: all)")
	fl.IntVar(&memory, "memory", 0, "memory to advertise in MiB (default: available memory)")
	fl.IntVar(&diskMB, "disk", 0, "free disk to advertise in MiB (default: free space of --work-dir)")
	fl.BoolVar(&once, "once", false, "run at most one job, then exit")
	fl.DurationVar(&poll, "poll", time.Second, "wait between claims when no job waits")
	fl.DurationVar(&bootTimeout, "boot-timeout", 8*time.Minute, "limit for each boot of a job's VM to reach a login prompt (raise it on a loaded host under TCG)")
	return c
}

// memAvailableMiB reads MemAvailable from /proc/meminfo (0 when unknown).
func memAvailableMiB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb / 1024
		}
	}
	return 0
}

// freeDiskMiB is the space free to unprivileged users in dir.
func freeDiskMiB(dir string) int {
	if dir == "" {
		dir = os.TempDir()
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return int(st.Bavail * uint64(st.Bsize) >> 20)
}
