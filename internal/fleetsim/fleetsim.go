// Package fleetsim simulates a fleet for benchmarks and the demo: host
// templates collected by the real agent from real firmware states (Debian's
// OVMF variable store as shipped and set to the 2011, 2023 and both-CA
// profiles with Microsoft's certificates, the AMI efivars dumps) and real
// images, multiplied into hosts with varied DMI, releases, channels and
// labels, then enrolled and reported through the API as agents do.
package fleetsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/nvram"
)

// FirmwareSource is one real firmware state.
type FirmwareSource struct {
	Name string
	// Dir is an efivars directory; or Store an edk2 variable store,
	// optionally set to Profile with the certificates in CertDir.
	Dir, Store, Profile, CertDir string
}

// Template is one collected host.
type Template struct {
	Name string
	Col  *agent.Collected
}

// Templates collects every image under every firmware state (and each image
// with no firmware variables, as a BIOS host reports).
func Templates(ctx context.Context, images []string, fws []FirmwareSource, work string) ([]Template, error) {
	var out []Template
	for _, img := range images {
		for _, fw := range append([]FirmwareSource{{Name: "none"}}, fws...) {
			dir := fw.Dir
			if fw.Store != "" {
				var err error
				if dir, err = exportStore(fw, filepath.Join(work, fw.Name)); err != nil {
					return nil, err
				}
			}
			col, err := agent.Collect(ctx, agent.Source{Root: img, EFIVars: dir, Hostname: "template"})
			if err != nil {
				return nil, fmt.Errorf("fleetsim: %s under %s: %w", img, fw.Name, err)
			}
			out = append(out, Template{Name: filepath.Base(img) + "/" + fw.Name, Col: col})
		}
	}
	return out, nil
}

func exportStore(fw FirmwareSource, dir string) (string, error) {
	b, err := os.ReadFile(fw.Store)
	if err != nil {
		return "", fmt.Errorf("fleetsim: %w", err)
	}
	if fw.Profile != "" {
		if b, err = nvram.ProfileStore(b, fw.Profile, fw.CertDir); err != nil {
			return "", fmt.Errorf("fleetsim: %s: %w", fw.Name, err)
		}
	}
	s, err := efi.ParseVarStore(b)
	if err != nil {
		return "", fmt.Errorf("fleetsim: %s: %w", fw.Name, err)
	}
	if _, err := nvram.Export(s.Vars(), dir); err != nil {
		return "", err
	}
	return dir, nil
}

// Variation is what varies between simulated hosts of one template.
var (
	models = [][3]string{ // vendor, product, BIOS
		{"QEMU", "Standard PC (Q35 + ICH9, 2009)", "EDK II"},
		{"Microsoft Corporation", "Virtual Machine", "Hyper-V UEFI Release v4.1"},
		{"Amazon EC2", "m6i.large", "Amazon EC2 1.0"},
		{"Google", "Google Compute Engine", "Google"},
		{"VMware, Inc.", "VMware20,1", "VMW201.00V"},
		{"Dell Inc.", "PowerEdge R650", "Dell Inc. 1.9.2"},
		{"Lenovo", "ThinkSystem SR630 V2", "Lenovo AFE118K"},
		{"HPE", "ProLiant DL360 Gen10", "HPE U32"},
	}
	releases = [][2]string{{"debian", "12"}, {"debian", "13"}, {"ubuntu", "24.04"}, {"rhel", "9.4"}}
	channels = []string{"stable", "updates", "security-only"}
	labels   = []string{"ring-0", "ring-1", "ring-2", "ring-3"}
)

// Host is one simulated host: a template with varied facts.
func Host(t Template, i int, r *rand.Rand) *fleet.Report {
	rep := *t.Col.Report
	m := models[r.IntN(len(models))]
	rep.Hostname = fmt.Sprintf("sim-%07d", i)
	rep.DMI = fleet.DMI{SysVendor: m[0], ProductName: m[1], BIOSVendor: m[2], BIOSVersion: fmt.Sprintf("%d.%d", 1+r.IntN(3), r.IntN(10))}
	rep.Platform = fleet.Platform(rep.DMI, false)
	rl := releases[r.IntN(len(releases))]
	rep.OS = fleet.OS{ID: rl[0], VersionID: rl[1], PrettyName: rl[0] + " " + rl[1]}
	rep.Lineage = fmt.Sprintf("golden-%s-%d", rl[0], 2025+r.IntN(2))
	rep.Channel = channels[r.IntN(len(channels))]
	rep.Label = labels[r.IntN(len(labels))]
	rep.TPM = fleet.TPM{Present: true, PCR7Sealed: r.IntN(5) == 0}
	return &rep
}

// Options run a simulation against a server.
type Options struct {
	Server, EnrollToken string
	Hosts, Workers      int
	Seed                uint64
	Templates           []Template
}

// Stats count what a simulation did.
type Stats struct {
	Enrolled, Reported, Uploaded atomic.Int64
}

// Run enrols and reports Hosts simulated hosts through the API with Workers
// concurrent agents. Blobs are uploaded only when the server lacks them, as
// the agent does.
func Run(ctx context.Context, o Options, st *Stats) error {
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if len(o.Templates) == 0 {
		return fmt.Errorf("fleetsim: no host templates")
	}
	ec, err := api.NewClient(o.Server, o.EnrollToken, "")
	if err != nil {
		return err
	}
	var upMu sync.Mutex
	jobs := make(chan int)
	errc := make(chan error, o.Workers)
	var wg sync.WaitGroup
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range jobs {
				if err := simulate(ctx, ec, o, i, st, &upMu); err != nil {
					errc <- err
					return
				}
			}
		}(w)
	}
	var ferr error
feed:
	for i := 0; i < o.Hosts; i++ {
		select {
		case jobs <- i:
		case ferr = <-errc:
			break feed
		case <-ctx.Done():
			ferr = ctx.Err()
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errc)
	if ferr == nil {
		ferr = <-errc
	}
	return ferr
}

func simulate(ctx context.Context, ec *api.Client, o Options, i int, st *Stats, upMu *sync.Mutex) error {
	r := rand.New(rand.NewPCG(o.Seed, uint64(i)))
	t := o.Templates[r.IntN(len(o.Templates))]
	rep := Host(t, i, r)
	var e *api.EnrollResponse
	err := throttled(ctx, func() (err error) { e, err = ec.Enroll(ctx, rep.Hostname); return err })
	if err != nil {
		return fmt.Errorf("fleetsim: enrol %s: %w", rep.Hostname, err)
	}
	st.Enrolled.Add(1)
	hc := *ec
	hc.Token = e.Credential
	rep.HostID = e.HostID
	needs := rep.Needs()
	var missing []string
	if err := throttled(ctx, func() (err error) { missing, err = hc.MissingBlobs(ctx, needs); return err }); err != nil {
		return err
	}
	if len(missing) > 0 {
		// One host at a time uploads; the others then find the blobs there.
		upMu.Lock()
		err = throttled(ctx, func() (err error) { missing, err = hc.MissingBlobs(ctx, needs); return err })
		for _, d := range missing {
			if err != nil {
				break
			}
			b := t.Col.Blobs[d]
			if err = throttled(ctx, func() error { return hc.PutBlob(ctx, d, b.Kind, b.Data) }); err == nil {
				st.Uploaded.Add(1)
			}
		}
		upMu.Unlock()
		if err != nil {
			return err
		}
	}
	body, _ := json.Marshal(rep)
	if err := throttled(ctx, func() error { _, err := hc.Report(ctx, body); return err }); err != nil {
		return fmt.Errorf("fleetsim: report %s: %w", rep.Hostname, err)
	}
	st.Reported.Add(1)
	return nil
}

// throttled calls f again while the server answers 429 (its rate limits:
// every simulated host enrols with the same token), waiting what its
// Retry-After says (at least 10 ms), as an agent would. A 429 is given before
// the request is handled, so the call is safe to repeat.
func throttled(ctx context.Context, f func() error) error {
	for {
		err := f()
		var se *api.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusTooManyRequests {
			return err
		}
		wait := max(se.RetryAfter, 10*time.Millisecond)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}
