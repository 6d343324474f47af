package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/fleetsim"
)

func newFleetSimulateCmd() *cobra.Command {
	var (
		server, token, certs string
		images, efivars      []string
		stores               []string
		hosts, workers       int
		seed                 uint64
	)
	c := &cobra.Command{
		Use:   "simulate --server URL --token ENROLL --image IMG [--efivars DIR] [--vars FILE[:PROFILE]] --hosts N",
		Short: "Enrol and report a simulated fleet built from real firmware states and images",
		Long: `simulate collects host templates with the agent's code from real images
(--image, a directory or disk image) under real firmware states (--efivars:
exported variables such as the AMI dumps in testdata/secureboot; --vars: an edk2
variable store, optionally set to a profile with --certs, e.g.
/usr/share/OVMF/OVMF_VARS_4M.ms.fd:microsoft-both), then enrols and reports
--hosts hosts through the API, each a template with varied DMI, release, channel
and label, as agents would. For demos and benchmarks.`,
		Example: `  vouch fleet simulate --server http://127.0.0.1:8443 --token "$ENROLL" --hosts 500 \
    --image .cache/fixtures/debian.raw --efivars testdata/secureboot/efivars-shim-test-data-1 \
    --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd:microsoft-both --certs testdata/secureboot/certs`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if server == "" || token == "" || len(images) == 0 || hosts <= 0 {
				return usageErrorf("give --server, --token (an enrolment token), --image and --hosts")
			}
			var fws []fleetsim.FirmwareSource
			for _, d := range efivars {
				fws = append(fws, fleetsim.FirmwareSource{Name: filepath.Base(d), Dir: d})
			}
			for i, v := range stores {
				file, profile, _ := strings.Cut(v, ":")
				if profile != "" && certs == "" {
					return usageErrorf("--vars %s: a profile needs --certs DIR", v)
				}
				fws = append(fws, fleetsim.FirmwareSource{Name: fmt.Sprintf("store-%d-%s", i, profile), Store: file, Profile: profile, CertDir: certs})
			}
			work, err := os.MkdirTemp("", "vouch-sim-")
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			defer os.RemoveAll(work)
			ts, err := fleetsim.Templates(c.Context(), images, fws, work)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			var st fleetsim.Stats
			start := time.Now()
			err = fleetsim.Run(c.Context(), fleetsim.Options{Server: server, EnrollToken: token, Hosts: hosts, Workers: workers, Seed: seed, Templates: ts}, &st)
			fmt.Fprintf(c.ErrOrStderr(), "vouch fleet simulate: %d hosts enrolled, %d reported, %d blobs uploaded from %d templates in %s\n",
				st.Enrolled.Load(), st.Reported.Load(), st.Uploaded.Load(), len(ts), time.Since(start).Round(time.Millisecond))
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", os.Getenv("VOUCH_SERVER"), "server URL")
	c.Flags().StringVar(&token, "token", "", "enrolment token")
	c.Flags().StringArrayVar(&images, "image", nil, "a root directory or disk image; repeatable")
	c.Flags().StringArrayVar(&efivars, "efivars", nil, "an exported variable directory; repeatable")
	c.Flags().StringArrayVar(&stores, "vars", nil, "an edk2 variable store, optionally FILE:PROFILE; repeatable")
	c.Flags().StringVar(&certs, "certs", "", "folder of Microsoft certificates for --vars profiles")
	c.Flags().IntVar(&hosts, "hosts", 100, "hosts to simulate")
	c.Flags().IntVar(&workers, "workers", 8, "concurrent simulated agents")
	c.Flags().Uint64Var(&seed, "seed", 1, "random seed (the same seed gives the same fleet)")
	return c
}
