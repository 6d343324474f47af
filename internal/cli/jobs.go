package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	jmespath "github.com/jmespath-community/go-jmespath"
	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/store"
)

// outFlags are -o json|table and --query (JMESPath over the JSON).
type outFlags struct {
	format, query string
}

func (o *outFlags) register(c *cobra.Command) {
	c.Flags().StringVarP(&o.format, "format", "o", "table", "output format: table or json")
	c.Flags().StringVar(&o.query, "query", "", "JMESPath query over the JSON answer (prints JSON), e.g. \"length(properties.results[?status=='PASSED'])\"")
}

func (o *outFlags) check() error {
	if o.format != "table" && o.format != "json" {
		return usageErrorf("unknown format %q (want table or json)", o.format)
	}
	if o.query != "" {
		if _, err := jmespath.Compile(o.query); err != nil {
			return usageErrorf("--query %q: %v", o.query, err)
		}
	}
	return nil
}

// render prints v: the query's answer, JSON, or the table.
func (o *outFlags) render(w io.Writer, v any, table func(io.Writer) error) error {
	if o.query != "" {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return err
		}
		res, err := jmespath.Search(o.query, generic)
		if err != nil {
			return usageErrorf("--query: %v", err)
		}
		return writeJSON(w, res)
	}
	if o.format == "json" {
		return writeJSON(w, v)
	}
	return buffered(w, table)
}

func newJobCmd() *cobra.Command {
	c := &cobra.Command{Use: "job", Short: "Image-validation jobs on a vouch server: create, get, list, cancel, delete, logs"}
	c.AddCommand(newJobCreateCmd(), newJobGetCmd(), newJobListCmd(), newJobCancelCmd(), newJobDeleteCmd(), newJobLogsCmd())
	return c
}

type jobCreateFlags struct {
	cf                           clientFlags
	out                          outFlags
	name, template, image, url   string
	upload                       bool
	priorities                   []int
	areas, cases, excludes, tags []string
	iterations, retry, conc      int
	ignoreFailure, newEnv, wait  bool
	firmware, vars, accel        string
	queuePriority, cpus, memory  int
	timeout                      time.Duration
}

func newJobCreateCmd() *cobra.Command {
	var f jobCreateFlags
	c := &cobra.Command{
		Use:   "create --image PATH [--template NAME | selection flags]",
		Short: "Queue a job that runs test cases against an image on a worker",
		Long: `create queues an image-validation job. The image is a path on the workers' shared
storage (--image), or is uploaded to the server first (--upload). The cases come from a
template (--template) or from the selection flags, as 'vouch test' takes them.

--wait follows the job, printing each case as it finishes on stderr, then prints the
finished job (-o json: {"name", ..., "properties": {"provisioningState", "results":
[{"testName", "status", ...}]}}) and exits 1 unless the job Succeeded.`,
		Example: `  vouch job create --server http://127.0.0.1:8443 --token "$(cat admin.token)" --image /srv/images/debian.qcow2 --priority 0 --wait -o json
  vouch job create --template smoke --image disk.raw --upload --firmware matrix
  vouch job create --image disk.raw --priority 0 --wait --query "properties.results[?status=='FAILED'].testName"`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return runJobCreate(c, &f) },
	}
	f.cf.register(c)
	f.out.register(c)
	fl := c.Flags()
	fl.StringVar(&f.name, "name", "", "job name (default: generated)")
	fl.StringVar(&f.template, "template", "", "job template to run")
	fl.StringVar(&f.image, "image", "", "disk image: a path on the workers' shared storage, or a local file with --upload")
	fl.BoolVar(&f.upload, "upload", false, "upload --image to the server first")
	fl.StringVar(&f.url, "image-url", "", "an image URL the server fetches (from the networks 'vouch serve --image-url-allow' names)")
	fl.IntSliceVar(&f.priorities, "priority", nil, "cases of these priorities (0-5)")
	fl.StringSliceVar(&f.areas, "area", nil, "cases of these areas")
	fl.StringSliceVar(&f.cases, "case", nil, "these cases (names or globs)")
	fl.StringSliceVar(&f.excludes, "exclude", nil, "leave out these cases")
	fl.StringSliceVar(&f.tags, "tag", nil, "cases with any of these tags")
	fl.IntVar(&f.iterations, "iterations", 0, "testIterations: run the cases this many times")
	fl.IntVar(&f.retry, "retry", 0, "retryCount: rerun a failed case up to this many times (a pass on a retry is reported flaky)")
	fl.IntVar(&f.conc, "concurrency", 0, "with --new-environment: this many VMs at once on the worker")
	fl.BoolVar(&f.ignoreFailure, "ignore-failure", false, "ignoreFailure: the job succeeds even when cases fail")
	fl.BoolVar(&f.newEnv, "new-environment", false, "useNewEnvironment: a fresh VM for every case")
	fl.StringVar(&f.firmware, "firmware", "", "firmware profile: microsoft-2011, microsoft-2023, microsoft-both, or matrix (all three beside the prediction)")
	fl.StringVar(&f.vars, "vars", "", "edk2/OVMF variable store on the workers' shared storage to boot with")
	fl.StringVar(&f.accel, "accel", "", "accelerator: auto, kvm (only workers with KVM take it) or tcg")
	fl.IntVar(&f.queuePriority, "queue-priority", 0, "queue order: higher runs first")
	fl.IntVar(&f.cpus, "cpus", 0, "virtual CPUs of the VM (default 2)")
	fl.IntVar(&f.memory, "memory", 0, "memory of the VM in MiB (default 1024)")
	fl.BoolVar(&f.wait, "wait", false, "follow the job until it ends; exit 1 unless it Succeeded")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Hour, "with --wait: give up after this long (the job keeps running)")
	return c
}

func runJobCreate(c *cobra.Command, f *jobCreateFlags) error {
	if err := f.out.check(); err != nil {
		return err
	}
	if (f.image == "") == (f.url == "") {
		return usageErrorf("give --image PATH or --image-url URL")
	}
	cl, err := f.cf.client()
	if err != nil {
		return err
	}
	var req jobs.CreateRequest
	req.Name = f.name
	p := &req.Properties
	p.Template, p.Priority, p.CPUs, p.MemoryMiB, p.Accel = f.template, f.queuePriority, f.cpus, f.memory, f.accel
	hasSel := len(f.priorities)+len(f.areas)+len(f.cases)+len(f.tags)+len(f.excludes) > 0
	if f.template == "" || hasSel || f.firmware != "" || f.vars != "" {
		if f.template != "" {
			return usageErrorf("--template fixes the selection and firmware: drop the selection and firmware flags, or the template")
		}
		tp := &jobs.TemplateProperties{TestIterations: f.iterations, RetryCount: f.retry, Concurrency: f.conc,
			IgnoreFailure: f.ignoreFailure, UseNewEnvironment: f.newEnv, Firmware: jobs.Firmware{Profile: f.firmware, Vars: f.vars}}
		if len(f.priorities)+len(f.areas)+len(f.cases)+len(f.tags) > 0 {
			tp.Selections = append(tp.Selections, imagetest.Selection{Names: f.cases, Areas: f.areas, Priorities: f.priorities, Tags: f.tags})
		}
		if len(f.excludes) > 0 {
			if len(tp.Selections) == 0 {
				tp.Selections = append(tp.Selections, imagetest.Selection{Names: []string{"*"}})
			}
			tp.Selections = append(tp.Selections, imagetest.Selection{Names: f.excludes, Action: imagetest.Exclude})
		}
		p.TemplateProperties = tp
	}
	ctx := c.Context()
	p.Image.Path, p.Image.URL = f.image, f.url
	if f.upload && f.image != "" {
		up, err := cl.UploadImage(ctx, f.image)
		if err != nil {
			return serverError(err)
		}
		fmt.Fprintf(c.ErrOrStderr(), "uploaded %s (%d bytes, sha256 %s)\n", f.image, up.Size, up.SHA256)
		p.Image.Path = up.Path
	}
	j, err := cl.CreateJob(ctx, req)
	if err != nil {
		return serverError(err)
	}
	if !f.wait {
		return f.out.render(c.OutOrStdout(), j, func(w io.Writer) error { return jobTable(w, j) })
	}
	fmt.Fprintf(c.ErrOrStderr(), "job %s: %s (%d cases)\n", j.Name, j.Properties.ProvisioningState, len(j.Properties.Cases))
	wctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	j, err = waitJob(wctx, cl, j.Name, c.ErrOrStderr())
	if err != nil {
		return serverError(err)
	}
	if err := f.out.render(c.OutOrStdout(), j, func(w io.Writer) error { return jobTable(w, j) }); err != nil {
		return err
	}
	if j.Properties.ProvisioningState != store.JobSucceeded {
		return &exitError{code: ExitFindings}
	}
	return nil
}

// waitJob polls a job until it ends, printing state changes and finished
// cases to progress.
func waitJob(ctx context.Context, cl *api.Client, name string, progress io.Writer) (jobs.Job, error) {
	seen := map[string]imagetest.Status{}
	state := ""
	t := time.NewTicker(time.Second)
	defer t.Stop()
	failures := 0
	for {
		j, err := cl.Job(ctx, name)
		var se *api.StatusError
		switch {
		case err == nil:
			failures = 0
		case errors.As(err, &se) && !se.Retryable():
			return j, err
		default:
			// The server restarting: keep asking while the deadline allows.
			if failures++; ctx.Err() != nil {
				return j, fmt.Errorf("job %s: %w (last error: %v)", name, ctx.Err(), err)
			}
		}
		if err == nil {
			if j.Properties.ProvisioningState != state {
				state = j.Properties.ProvisioningState
				fmt.Fprintf(progress, "job %s: %s %s\n", name, state, j.Properties.Reason)
			}
			for _, r := range j.Properties.Results {
				key := fmt.Sprintf("%s#%d", r.TestName, r.Iteration)
				if r.Status.Final() && seen[key] != r.Status {
					fmt.Fprintf(progress, "  %-9s %-28s %7.1fs  %s\n", r.Status, r.TestName, r.DurationSeconds, r.Message)
				}
				seen[key] = r.Status
			}
			if store.JobFinal(state) {
				return j, nil
			}
		}
		select {
		case <-ctx.Done():
			return j, fmt.Errorf("job %s still %s: %w", name, state, ctx.Err())
		case <-t.C:
		}
	}
}

func jobTable(w io.Writer, j jobs.Job) error {
	p := j.Properties
	fmt.Fprintf(w, "job %s: %s", j.Name, p.ProvisioningState)
	if p.Reason != "" {
		fmt.Fprintf(w, " (%s)", p.Reason)
	}
	fmt.Fprintf(w, "\nimage %s, attempt %d of %d", p.Image.Path, p.Attempt, p.MaxAttempts)
	if p.Worker != "" {
		fmt.Fprintf(w, ", worker %s", p.Worker)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TEST\tSTATUS\tSECONDS\tMESSAGE")
	for _, r := range p.Results {
		name := r.TestName
		if r.Iteration > 0 {
			name += fmt.Sprintf(" #%d", r.Iteration)
		}
		st := string(r.Status)
		if r.Flaky {
			st += " (flaky)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\n", name, st, r.DurationSeconds, oneLineMsg(r.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if mx := p.Report.Matrix; mx != nil {
		fmt.Fprintln(w)
		return imagetest.WriteMatrixTable(w, mx)
	}
	return nil
}

func oneLineMsg(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

// clientCall is the body of a client command: check the output flags, make
// the client, ask the server, render its answer.
func clientCall[T any](c *cobra.Command, cf *clientFlags, out *outFlags, ask func(*api.Client) (T, error), table func(io.Writer, T) error) error {
	if err := out.check(); err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	v, err := ask(cl)
	if err != nil {
		return serverError(err)
	}
	return out.render(c.OutOrStdout(), v, func(w io.Writer) error { return table(w, v) })
}

// clientDo is the body of a client command with nothing to render: make
// the client, ask the server.
func clientDo(cf *clientFlags, do func(*api.Client) error) error {
	cl, err := cf.client()
	if err != nil {
		return err
	}
	if err := do(cl); err != nil {
		return serverError(err)
	}
	return nil
}

func newJobGetCmd() *cobra.Command {
	var cf clientFlags
	var out outFlags
	c := &cobra.Command{
		Use: "get NAME", Short: "Show a job and its results", Args: cobra.ExactArgs(1),
		Example: `  vouch job get job-20261202-063000-1a2b3c4d --query "properties.results[?status=='FAILED'].testName"`,
		RunE: func(c *cobra.Command, args []string) error {
			return clientCall(c, &cf, &out, func(cl *api.Client) (jobs.Job, error) { return cl.Job(c.Context(), args[0]) }, jobTable)
		},
	}
	cf.register(c)
	out.register(c)
	return c
}

func newJobListCmd() *cobra.Command {
	var cf clientFlags
	var out outFlags
	var f store.JobFilter
	c := &cobra.Command{
		Use: "list", Short: "List jobs, newest first", Args: cobra.NoArgs,
		Example: `  vouch job list --state Failed
  vouch job list --query "length([?properties.provisioningState=='Succeeded'])"`,
		RunE: func(c *cobra.Command, _ []string) error {
			return clientCall(c, &cf, &out, func(cl *api.Client) ([]jobs.Job, error) { return cl.Jobs(c.Context(), f) }, jobListTable)
		},
	}
	cf.register(c)
	out.register(c)
	c.Flags().StringVar(&f.State, "state", "", "only jobs in this provisioningState")
	c.Flags().StringVar(&f.Template, "template", "", "only jobs of this template")
	c.Flags().IntVar(&f.Limit, "limit", 100, "at most this many")
	return c
}

func jobListTable(w io.Writer, list []jobs.Job) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPASSED\tFAILED\tOTHER\tCREATED\tREASON")
	for _, j := range list {
		s := jobs.Summary(j.Properties.Results)
		other := len(j.Properties.Results) - s[imagetest.Passed] - s[imagetest.Failed]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", j.Name, j.Properties.ProvisioningState, s[imagetest.Passed], s[imagetest.Failed],
			other, j.Properties.CreatedAt.Format(time.RFC3339), oneLineMsg(j.Properties.Reason))
	}
	return tw.Flush()
}

func newJobCancelCmd() *cobra.Command {
	var cf clientFlags
	var out outFlags
	c := &cobra.Command{
		Use: "cancel NAME", Short: "Cancel a job (a running VM is stopped within seconds)", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return clientCall(c, &cf, &out, func(cl *api.Client) (jobs.Job, error) { return cl.CancelJob(c.Context(), args[0]) }, jobTable)
		},
	}
	cf.register(c)
	out.register(c)
	return c
}

func newJobDeleteCmd() *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use: "delete NAME", Short: "Delete an ended job with its logs", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return clientDo(&cf, func(cl *api.Client) error { return cl.DeleteJob(c.Context(), args[0]) })
		},
	}
	cf.register(c)
	return c
}

func newJobLogsCmd() *cobra.Command {
	var cf clientFlags
	var caseName string
	var follow bool
	c := &cobra.Command{
		Use: "logs NAME", Short: "Print a job's log (runner progress, per-case lines, the serial console)", Args: cobra.ExactArgs(1),
		Example: `  vouch job logs --case console job-20261202-063000-1a2b3c4d
  vouch job logs --follow job-20261202-063000-1a2b3c4d`,
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := cf.client()
			if err != nil {
				return err
			}
			w := c.OutOrStdout()
			print := func(l store.JobLogLine) error {
				prefix := ""
				if l.Case != "" && caseName == "" {
					prefix = "[" + l.Case + "] "
				}
				_, err := fmt.Fprintf(w, "%s%s\n", prefix, l.Line)
				return err
			}
			if follow {
				end, err := cl.FollowJobLog(c.Context(), args[0], caseName, 0, print)
				if err != nil {
					if c.Context().Err() != nil {
						return nil
					}
					return serverError(err)
				}
				fmt.Fprintf(c.ErrOrStderr(), "job %s: %s\n", args[0], end)
				return nil
			}
			var after int64
			for {
				lines, _, err := cl.JobLog(c.Context(), args[0], caseName, after)
				if err != nil {
					return serverError(err)
				}
				for _, l := range lines {
					if err := print(l); err != nil {
						return err
					}
					after = l.Seq
				}
				if len(lines) == 0 {
					return nil
				}
			}
		},
	}
	cf.register(c)
	c.Flags().StringVar(&caseName, "case", "", "only this case's lines (\"console\": the serial console)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "stream the lines as the worker sends them until the job ends (its final state goes to stderr)")
	return c
}

func newTemplateCmd() *cobra.Command {
	c := &cobra.Command{Use: "template", Short: "Job templates on a vouch server: create, get, list, delete"}
	var (
		cf  clientFlags
		out outFlags
	)
	create := &cobra.Command{
		Use:   "create NAME --file TEMPLATE.json",
		Short: "Create or replace a job template from a JSON file ({\"properties\": {\"selections\": [...], ...}})",
		Example: `  echo '{"properties":{"selections":[{"casePriority":[0]}],"retryCount":1}}' > smoke.json
  vouch template create smoke --file smoke.json`,
		Args: cobra.ExactArgs(1),
	}
	var file string
	create.RunE = func(c *cobra.Command, args []string) error {
		if err := out.check(); err != nil {
			return err
		}
		if file == "" {
			return usageErrorf("give --file TEMPLATE.json")
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return usageErrorf("%v", err)
		}
		var t jobs.Template
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return usageErrorf("%s: %v", file, err)
		}
		t.Name = args[0]
		cl, err := cf.client()
		if err != nil {
			return err
		}
		got, err := cl.PutTemplate(c.Context(), t)
		if err != nil {
			return serverError(err)
		}
		return out.render(c.OutOrStdout(), got, func(w io.Writer) error { return templateTable(w, []jobs.Template{got}) })
	}
	cf.register(create)
	out.register(create)
	create.Flags().StringVar(&file, "file", "", "template JSON")

	var gcf clientFlags
	var gout outFlags
	get := &cobra.Command{Use: "get NAME", Short: "Show a template", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return clientCall(c, &gcf, &gout, func(cl *api.Client) (jobs.Template, error) { return cl.Template(c.Context(), args[0]) },
				func(w io.Writer, t jobs.Template) error { return templateTable(w, []jobs.Template{t}) })
		}}
	gcf.register(get)
	gout.register(get)

	var lcf clientFlags
	var lout outFlags
	list := &cobra.Command{Use: "list", Short: "List templates", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return clientCall(c, &lcf, &lout, func(cl *api.Client) ([]jobs.Template, error) { return cl.Templates(c.Context()) }, templateTable)
		}}
	lcf.register(list)
	lout.register(list)

	var dcf clientFlags
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a template", Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return clientDo(&dcf, func(cl *api.Client) error { return cl.DeleteTemplate(c.Context(), args[0]) })
		}}
	dcf.register(del)
	c.AddCommand(create, get, list, del)
	return c
}

func templateTable(w io.Writer, ts []jobs.Template) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSELECTIONS\tITERATIONS\tRETRIES\tFIRMWARE\tUPDATED")
	for _, t := range ts {
		var sel []string
		for _, s := range t.Properties.Selections {
			b, _ := json.Marshal(s)
			sel = append(sel, string(b))
		}
		fw := t.Properties.Firmware.Profile
		if t.Properties.Firmware.Vars != "" {
			fw = t.Properties.Firmware.Vars
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", t.Name, strings.Join(sel, " "), max(t.Properties.TestIterations, 1),
			t.Properties.RetryCount, fw, t.UpdatedAt.Format(time.RFC3339))
	}
	return tw.Flush()
}
