package imagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vouch-dev/vouch/internal/nvram"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/vm"
)

// MatrixProfiles are the firmware generations a fleet has: db with only the
// Microsoft 2011 CAs (most machines today), only the 2023 CAs (new machines),
// both (machines that took the KEK/db update).
var MatrixProfiles = []string{"microsoft-2011", "microsoft-2023", "microsoft-both"}

// MatrixConfig is a firmware-matrix run.
type MatrixConfig struct {
	Image string
	// Template is the variable store the profiles are written into (default
	// Debian's OVMF_VARS_4M.ms.fd: its PK and KEK stay, db and KEK get the
	// profile's Microsoft CAs); CertDir holds the Microsoft certificates ("": the built-in ones).
	Template string
	CertDir  string
	Profiles []string // default MatrixProfiles
	Accel    string
	// BootTimeout bounds each boot (default 8m).
	BootTimeout time.Duration
	// FullBoot waits for a login prompt; by default a boot counts once the
	// kernel has started, which is when shim, GRUB and the kernel have all
	// passed Secure Boot verification (what the firmware trust state decides).
	FullBoot bool
	WorkDir  string
	Log      io.Writer
	Observer func(MatrixRow) // called as each profile's boot ends; may be nil
}

// MatrixRow is one firmware profile's boot beside the prediction.
type MatrixRow struct {
	Profile  string        `json:"profile"`
	Booted   bool          `json:"booted"`
	Outcome  string        `json:"outcome"` // booted, refused (Secure Boot said no), failed
	Reason   string        `json:"reason"`
	Line     string        `json:"line,omitempty"` // the console line that decided it
	Tail     []string      `json:"consoleTail,omitempty"`
	Duration time.Duration `json:"-"`
	// Predicted is what `vouch secureboot --firmware PROFILE` says of the
	// boot path OVMF takes on a fresh variable store (nil: it cannot tell).
	Predicted  *bool  `json:"predicted"`
	Prediction string `json:"prediction"`
	Agrees     bool   `json:"agrees"`
}

// MarshalJSON adds durationSeconds.
func (r MatrixRow) MarshalJSON() ([]byte, error) {
	type plain MatrixRow
	return json.Marshal(struct {
		plain
		DurationSeconds float64 `json:"durationSeconds"`
	}{plain(r), seconds(r.Duration)})
}

// Matrix is the whole firmware matrix.
type Matrix struct {
	Image         string      `json:"image"`
	Accel         string      `json:"accel"`
	Until         string      `json:"until"` // "kernel" or "login"
	Rows          []MatrixRow `json:"rows"`
	Disagreements int         `json:"disagreements"`
	NotBooted     int         `json:"notBooted"`
}

// OK reports whether the image booted on every profile as predicted.
func (m *Matrix) OK() bool { return m.Disagreements == 0 && m.NotBooted == 0 }

var (
	// What ends a matrix boot early: the EFI stub's or the kernel's first
	// message (the kernel image passed verification and runs).
	reKernelStarted = regexp.MustCompile(`EFI stub: |Linux version \d+\.\d+`)
	// Secure Boot refusals, as opposed to other boot failures.
	reRefused = regexp.MustCompile(`Access Denied|Security Violation|Verification failed|bad shim signature|invalid signature`)
)

// Predict is vouch secureboot's answer for the image under a firmware
// profile: the removable-media path (EFI/BOOT/BOOTX64.EFI), which OVMF boots
// on a variable store without boot entries, or any boot path when the ESP has
// none.
func Predict(t *target.Target, profile string) (*bool, string, error) {
	fw, err := secureboot.FromProfile(profile)
	if err != nil {
		return nil, "", err
	}
	if t.ESP == nil {
		f := false
		return &f, "no EFI System Partition: nothing for UEFI to boot", nil
	}
	r := secureboot.AnalyzeTarget(t, fw, secureboot.Options{})
	for _, bp := range r.BootPaths {
		if bp.Kind == secureboot.KindRemovable {
			return bp.Boots, bp.Entry + ": " + bp.Verdict, nil
		}
	}
	b := r.Transition.BootsToday
	return &b, "no removable-media path; " + r.Transition.Advice, nil
}

// RunMatrix boots the image once per profile, in order, with Secure Boot on and
// a variable store built by nvram.ProfileStore, and compares each boot with
// Predict. Errors are for runs that could not happen (bad template or
// certificates, QEMU missing, an unreadable image); an image that does not
// boot is a row.
func RunMatrix(ctx context.Context, cfg MatrixConfig) (*Matrix, error) {
	if cfg.Template == "" {
		cfg.Template = filepath.Join(vm.OVMFDir, "OVMF_VARS_4M.ms.fd")
	}
	if len(cfg.Profiles) == 0 {
		cfg.Profiles = MatrixProfiles
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = 8 * time.Minute
	}
	tmpl, err := os.ReadFile(cfg.Template)
	if err != nil {
		return nil, &Error{Reason: "read the variable store template", Err: err}
	}
	t, err := target.Open(cfg.Image, target.Options{})
	if err != nil {
		return nil, &Error{Reason: "open the image to predict its boot", Err: err}
	}
	defer t.Close()
	dir, err := os.MkdirTemp(cfg.WorkDir, "vouch-matrix-")
	if err != nil {
		return nil, &Error{Reason: "create a temporary directory", Err: err}
	}
	defer os.RemoveAll(dir)

	mx := &Matrix{Image: cfg.Image, Until: "kernel", Rows: []MatrixRow{}}
	if cfg.FullBoot {
		mx.Until = "login"
	}
	for _, p := range cfg.Profiles {
		store, err := nvram.ProfileStore(tmpl, p, cfg.CertDir)
		if err != nil {
			return nil, &Error{Reason: "build the " + p + " variable store from " + cfg.Template, Err: err}
		}
		path := filepath.Join(dir, p+".fd")
		if err := os.WriteFile(path, store, 0o600); err != nil {
			return nil, &Error{Reason: "write the " + p + " variable store", Err: err}
		}
		row := MatrixRow{Profile: p}
		if row.Predicted, row.Prediction, err = Predict(t, p); err != nil {
			return nil, &Error{Reason: "predict the boot under " + p, Err: err}
		}
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "booting %s on %s firmware (Secure Boot)\n", cfg.Image, p)
		}
		accel, err := matrixBoot(ctx, cfg, path, &row)
		if err != nil {
			return nil, err
		}
		mx.Accel = accel
		row.Agrees = row.Predicted != nil && *row.Predicted == row.Booted
		if !row.Agrees {
			mx.Disagreements++
		}
		if !row.Booted {
			mx.NotBooted++
		}
		mx.Rows = append(mx.Rows, row)
		if cfg.Observer != nil {
			cfg.Observer(row)
		}
	}
	return mx, nil
}

// matrixBoot boots once and fills row's outcome.
func matrixBoot(ctx context.Context, cfg MatrixConfig, vars string, row *MatrixRow) (string, error) {
	m, err := vm.Start(ctx, vm.Config{
		Image: cfg.Image, Firmware: vm.Firmware{Boot: vm.UEFI, SecureBoot: true, Vars: vars},
		Accel: cfg.Accel, Timeout: cfg.BootTimeout + time.Minute, WorkDir: cfg.WorkDir, Log: cfg.Log,
	})
	if err != nil {
		return "", err
	}
	defer m.Close()
	start := time.Now()
	bctx, cancel := context.WithTimeout(ctx, cfg.BootTimeout)
	defer cancel()
	if cfg.FullBoot {
		took, err := m.WaitBoot(bctx)
		row.Duration = took
		if err == nil {
			row.Booted, row.Outcome, row.Reason = true, "booted", "login prompt after "+took.Round(100*time.Millisecond).String()
			return m.Accel(), ctx.Err()
		}
		var be *vm.BootError
		if errors.As(err, &be) {
			row.Reason, row.Line, row.Tail = be.Reason, be.Line, be.Tail
		} else {
			row.Reason = err.Error()
		}
		row.Outcome = "failed"
		if reRefused.MatchString(row.Line) {
			row.Outcome = "refused"
		}
		return m.Accel(), ctx.Err()
	}
	failures := vm.FailurePatterns()
	var failure string
	_, line, err := m.Console().WaitFrom(bctx, 0, func(l string) bool {
		for _, p := range failures {
			if p.Match(l) {
				failure = p.Reason
				return true
			}
		}
		return reKernelStarted.MatchString(l)
	})
	row.Duration = time.Since(start)
	switch {
	case err != nil:
		row.Outcome = "failed"
		row.Reason = "the kernel did not start within " + cfg.BootTimeout.String()
		if errors.Is(err, vm.ErrExited) {
			row.Reason = "QEMU exited before the kernel started: " + err.Error()
		}
		row.Tail = m.Console().Tail(30)
	case failure != "":
		row.Outcome, row.Reason, row.Line, row.Tail = "failed", failure, strings.TrimSpace(line), m.Console().Tail(30)
		if reRefused.MatchString(line) {
			row.Outcome = "refused"
		}
	default:
		row.Booted, row.Outcome, row.Line = true, "booted", strings.TrimSpace(line)
		row.Reason = fmt.Sprintf("the kernel started after %s: shim, GRUB and the kernel passed Secure Boot", row.Duration.Round(100*time.Millisecond))
	}
	return m.Accel(), ctx.Err()
}

// WriteMatrixTable prints the matrix for people, with any disagreement
// between the boot and the prediction called out.
func WriteMatrixTable(w io.Writer, mx *Matrix) error {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIRMWARE\tPREDICTED\tBOOTED\tAGREES\tDETAIL")
	for _, r := range mx.Rows {
		pred := "unknown"
		if r.Predicted != nil {
			pred = map[bool]string{true: "boots", false: "refused"}[*r.Predicted]
		}
		agree := "yes"
		if !r.Agrees {
			agree = "NO  <<<"
		}
		detail := r.Reason
		if !r.Booted && r.Line != "" {
			detail += ": " + r.Line
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Profile, pred, r.Outcome, agree, detail)
	}
	tw.Flush()
	fmt.Fprintf(&buf, "\nImage: %s (accel %s; a boot counts at the %s)\n", mx.Image, mx.Accel,
		map[string]string{"kernel": "kernel's start", "login": "login prompt"}[mx.Until])
	for _, r := range mx.Rows {
		fmt.Fprintf(&buf, "  %s: predicted: %s\n", r.Profile, r.Prediction)
	}
	if mx.Disagreements > 0 {
		fmt.Fprintf(&buf, "\n!!! DISAGREEMENT: %d of %d firmware profiles booted differently from what vouch secureboot predicts.\n", mx.Disagreements, len(mx.Rows))
		for _, r := range mx.Rows {
			if !r.Agrees {
				fmt.Fprintf(&buf, "!!! %s: predicted %s, the VM %s. Console tail:\n", r.Profile, predWord(r.Predicted), r.Outcome)
				for _, l := range r.Tail {
					fmt.Fprintf(&buf, "!!!   %s\n", l)
				}
			}
		}
	} else {
		fmt.Fprintf(&buf, "\nAll %d boots agree with the prediction.\n", len(mx.Rows))
	}
	_, err := io.WriteString(w, buf.String())
	return err
}

func predWord(p *bool) string {
	if p == nil {
		return "unknown"
	}
	if *p {
		return "it boots"
	}
	return "a refusal"
}
