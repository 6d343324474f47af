package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/web"
)

func newServeCmd() *cobra.Command {
	var o api.ServeOptions
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the fleet server: agents report, people ask fleet questions",
		Long: `serve runs vouch's fleet server: an HTTP JSON API (OpenAPI document at
/openapi.json) where agents enrol and report their hosts' facts, and where readers
ask for readiness, host lists, fleet-wide what-if and canary sets.

The database is SQLite in DIR/vouch.db (--data, default /var/lib/vouch), or
PostgreSQL with --database postgres://... (several servers can share it). Schema
migrations run on start. On first start an admin token is written to
DIR/admin.token (mode 0600); create other tokens with 'vouch token create'.`,
		Example: `  vouch serve --listen 127.0.0.1:8443 --data /var/lib/vouch
  vouch serve --database postgres://vouch@db/vouch --data /etc/vouch --tls-cert cert.pem --tls-key key.pem`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.Log = slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			o.Ready = func(addr, tok string) {
				fmt.Fprintf(c.ErrOrStderr(), "vouch serve: listening on %s (admin token in %s)\n", addr, tok)
			}
			o.Routes = web.Register
			if err := api.Serve(c.Context(), o); err != nil {
				return &exitError{code: ExitError, err: err}
			}
			return nil
		},
	}
	c.Flags().StringVar(&o.Listen, "listen", "127.0.0.1:8443", "address to listen on")
	c.Flags().StringVar(&o.DataDir, "data", "/var/lib/vouch", "data directory: the SQLite database and admin.token")
	c.Flags().StringVar(&o.Database, "database", "", "PostgreSQL URL (postgres://...) instead of SQLite")
	c.Flags().StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate (PEM)")
	c.Flags().StringVar(&o.TLSKey, "tls-key", "", "TLS private key (PEM)")
	c.Flags().Int64Var(&o.Limits.MaxReport, "max-report-bytes", 4<<20, "largest report accepted")
	c.Flags().Int64Var(&o.Limits.MaxBlob, "max-blob-bytes", 64<<20, "largest blob (EFI binary, kernel) accepted")
	c.Flags().Float64Var(&o.Limits.Rate, "rate", 50, "requests per second allowed per credential")
	c.Flags().IntVar(&o.Limits.Burst, "burst", 100, "burst of requests allowed per credential")
	c.Flags().Float64Var(&o.Limits.IPRate, "ip-rate", 2000, "requests per second allowed per remote address")
	c.Flags().IntVar(&o.Limits.IPBurst, "ip-burst", 4000, "burst of requests allowed per remote address")
	c.Flags().StringSliceVar(&o.ImageURLAllow, "image-url-allow", nil, "networks (CIDRs or addresses) job image URLs may be fetched from; none by default")
	c.Flags().DurationVar(&o.JobLease, "job-lease", 30*time.Second, "how long a worker holds a job without a heartbeat before it is queued again or failed")
	return c
}

// clientFlags name a server and a token.
type clientFlags struct {
	server, token, caCert string
}

func (f *clientFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.server, "server", os.Getenv("VOUCH_SERVER"), "server URL (default $VOUCH_SERVER)")
	c.Flags().StringVar(&f.token, "token", "", "token (default $VOUCH_TOKEN)")
	c.Flags().StringVar(&f.caCert, "ca-cert", "", "CA certificate (PEM) the server's TLS certificate chains to")
}

func (f *clientFlags) client() (*api.Client, error) {
	if f.server == "" {
		return nil, usageErrorf("give --server URL")
	}
	tok := f.token
	if tok == "" {
		tok = os.Getenv("VOUCH_TOKEN")
	}
	if tok == "" {
		return nil, usageErrorf("give --token (or set VOUCH_TOKEN)")
	}
	c, err := api.NewClient(f.server, strings.TrimSpace(tok), f.caCert)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return c, nil
}

// serverError turns a server's refusal into exit 2 with its message.
func serverError(err error) error {
	return &exitError{code: ExitError, err: err}
}

func newTokenCmd() *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Manage the fleet server's tokens"}
	var (
		cf   clientFlags
		role string
		note string
	)
	create := &cobra.Command{
		Use:   "create --role enroll|reader|admin|worker",
		Short: "Create a token and print it (only its hash is kept)",
		Long: `create asks the server for a new token and prints it on stdout. Roles:
enroll (agents exchange it once for their own host credential), reader (fleet
questions), admin (fleet questions and tokens), worker (image-validation workers).`,
		Example: `  vouch token create --role enroll --server http://127.0.0.1:8443 --token "$(cat /var/lib/vouch/admin.token)"`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ok := false
			for _, r := range store.Roles() {
				ok = ok || r == role
			}
			if !ok {
				return usageErrorf("--role %q: want one of %s", role, strings.Join(store.Roles(), ", "))
			}
			cl, err := cf.client()
			if err != nil {
				return err
			}
			tok, err := cl.CreateToken(c.Context(), role, note)
			if err != nil {
				return serverError(err)
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), tok)
			return err
		},
	}
	cf.register(create)
	create.Flags().StringVar(&role, "role", "", "enroll, reader, admin or worker")
	create.Flags().StringVar(&note, "note", "", "what the token is for")
	c.AddCommand(create)
	return c
}

func newAgentCmd() *cobra.Command {
	var (
		o          agent.Options
		configFile string
	)
	c := &cobra.Command{
		Use:   "agent --server URL --state DIR [--enroll TOKEN]",
		Short: "Collect this host's boot facts and report them to a fleet server",
		Long: `agent collects the host's Secure Boot facts with vouch's engine — firmware
variables (PK, KEK, db, dbx, MokList, SbatLevel, boot entries), the ESP's EFI
binaries and the kernels, boot packages, os-release, DMI, apt/dnf sources, TPM
bindings of encrypted disks — and reports them to 'vouch serve'. It enrols on
first use with --enroll and keeps its credential under --state; afterwards it
uploads only the blobs the server lacks and sends only what changed. When the
server is away it retries with backoff and jitter, then spools the report under
--state and delivers it next time.

--root (a directory or a disk image) and --efivars (an exported variable
directory) collect for an offline host. --config FILE holds label=, lineage=
and channel= lines. Without --once it reports every --interval.

Exit codes: 0 the server acknowledged the report, 1 it was spooled (server
unavailable), 2 usage error, unreadable input or a refusal by the server.`,
		Example: `  vouch agent --server https://vouch:8443 --enroll TOKEN --state /var/lib/vouch-agent --once
  vouch agent --server http://127.0.0.1:8443 --state ./st --root disk.raw --efivars ./vars --hostname web-1 --once`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.Server == "" || o.StateDir == "" {
				return usageErrorf("give --server and --state")
			}
			if configFile != "" {
				cfg, err := agent.ReadConfig(configFile)
				if err != nil {
					return usageErrorf("%v", err)
				}
				o.Source.Config = cfg
			}
			o.Source.Agent = "vouch " + Version()
			o.Log = c.ErrOrStderr()
			res, err := agent.Run(c.Context(), o)
			if err != nil {
				if res != nil && res.Spooled {
					return &exitError{code: ExitFindings, err: err}
				}
				return &exitError{code: ExitError, err: err}
			}
			what := "unchanged (heartbeat)"
			if res.Sent {
				what = fmt.Sprintf("report %s sent, %d blob(s) uploaded", res.Digest[:12], res.Uploaded)
			}
			if o.Once {
				fmt.Fprintf(c.ErrOrStderr(), "vouch agent: host %s: %s\n", res.HostID, what)
			}
			return nil
		},
	}
	c.Flags().StringVar(&o.Server, "server", os.Getenv("VOUCH_SERVER"), "server URL")
	c.Flags().StringVar(&o.EnrollToken, "enroll", "", "enrolment token (first run)")
	c.Flags().StringVar(&o.StateDir, "state", "/var/lib/vouch-agent", "state directory: credential, last report, spool")
	c.Flags().StringVar(&o.CAFile, "ca-cert", "", "CA certificate (PEM) of the server's TLS certificate")
	c.Flags().StringVar(&o.Source.Root, "root", "", "collect from this root directory or disk image instead of the running system")
	c.Flags().StringVar(&o.Source.EFIVars, "efivars", "", "firmware variables directory (efivarfs or exported Name-GUID files)")
	c.Flags().StringVar(&o.Source.Hostname, "hostname", "", "host name to report")
	c.Flags().BoolVar(&o.Source.Summaries, "summaries", false, "also report the baseline and package-integrity summaries (hashes every packaged file)")
	c.Flags().StringVar(&configFile, "config", "/etc/vouch/agent.conf", "agent configuration (label=, lineage=, channel=)")
	c.Flags().BoolVar(&o.Once, "once", false, "report once and exit")
	c.Flags().DurationVar(&o.Interval, "interval", time.Hour, "time between reports (with jitter) when not --once")
	c.Flags().IntVar(&o.Attempts, "attempts", 6, "attempts per call before spooling")
	c.Flags().DurationVar(&o.BackoffBase, "backoff", time.Second, "first retry wait (doubles, with jitter)")
	return c
}
