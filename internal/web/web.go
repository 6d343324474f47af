// Package web is vouch serve's dashboard: server-rendered HTML (html/template,
// inline CSS and SVG charts, no script and nothing from a CDN, so it works
// without internet access): readiness at a glance with counts by group, host
// search, a host page (boot paths, firmware trust, verdict, history), what-if
// of an uploaded change and the canary set. People sign in with a reader or
// admin token, kept in an HttpOnly, SameSite=Strict cookie.
package web

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/store"
)

//go:embed templates/*.html
var files embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"pct": func(n, total int64) float64 {
		if total == 0 {
			return 0
		}
		return float64(n) * 100 / float64(total)
	},
	"yes": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
	"join":  strings.Join,
	"scale": func(of, p float64) float64 { return p * of / 100 },
	"short": func(s string) string { return s[:min(12, len(s))] },
	"time":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"q":     url.QueryEscape,
	"deref": func(b *bool) string {
		if b == nil {
			return "unknown"
		}
		if *b {
			return "boots"
		}
		return "DOES NOT BOOT"
	},
}).ParseFS(files, "templates/*.html"))

const cookie = "vouch_token"

// Dashboard serves the pages.
type Dashboard struct {
	srv *api.Server
}

// Register adds the dashboard's routes to the API server.
func Register(srv *api.Server) {
	d := &Dashboard{srv: srv}
	m := srv.Mux()
	m.HandleFunc("GET /{$}", d.page(d.home))
	m.HandleFunc("GET /ui/hosts", d.page(d.hosts))
	m.HandleFunc("GET /ui/hosts/{id}", d.page(d.host))
	m.HandleFunc("GET /ui/canaries", d.page(d.canaries))
	m.HandleFunc("GET /ui/whatif", d.page(d.whatifForm))
	m.HandleFunc("POST /ui/whatif", d.page(d.whatif))
	m.HandleFunc("GET /ui/login", func(w http.ResponseWriter, r *http.Request) { d.render(w, "login", map[string]any{"Error": ""}) })
	m.HandleFunc("POST /ui/login", d.login)
	d.registerJobs()
	m.HandleFunc("POST /ui/logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: cookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	})
}

func (d *Dashboard) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; script-src 'self'; connect-src 'self'")
	if err := tmpl.ExecuteTemplate(w, name, data); err != nil {
		d.srv.Log.Error("dashboard template", "page", name, "err", err)
	}
}

// page authenticates a reader from the cookie and maps errors to a page.
func (d *Dashboard) page(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookie)
		if err != nil || !d.reader(r, c.Value) {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, d.srv.Limits.MaxWhatIf)
		if err := h(w, r); err != nil {
			status, msg := http.StatusInternalServerError, "internal error"
			var ie *fleet.InputError
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &ie):
				status, msg = http.StatusBadRequest, ie.Reason
			case errors.As(err, &mbe):
				status, msg = http.StatusRequestEntityTooLarge, "the upload is too large"
			case errors.Is(err, store.ErrNotFound):
				status, msg = http.StatusNotFound, "not found"
			default:
				d.srv.Log.Error("dashboard", "path", r.URL.Path, "err", err)
			}
			w.WriteHeader(status)
			d.render(w, "error", map[string]any{"Status": status, "Message": msg})
		}
	}
}

func (d *Dashboard) reader(r *http.Request, token string) bool {
	t, err := d.srv.Store.Token(r.Context(), api.HashToken(token))
	return err == nil && (t.Role == store.RoleReader || t.Role == store.RoleAdmin || t.Role == store.RoleWorker)
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	tok := strings.TrimSpace(r.FormValue("token"))
	if !d.reader(r, tok) {
		w.WriteHeader(http.StatusUnauthorized)
		d.render(w, "login", map[string]any{"Error": "unknown token, or not a reader or admin token"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: 12 * 3600})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// bar is one bar of a chart.
type bar struct {
	Label       string
	Hosts       int64
	Boots       int64
	Survives    int64
	Only2011    int64
	Width       float64 // of the largest group, percent
	Link        string
	Percent2023 float64
}

func (d *Dashboard) home(w http.ResponseWriter, r *http.Request) error {
	by := r.URL.Query().Get("by")
	if by == "" {
		by = store.DimPlatform
	}
	if !store.ValidDim(by) {
		return &fleet.InputError{Reason: "unknown dimension " + by}
	}
	rd, err := d.srv.Fleet.Readiness(r.Context(), []string{by}, fleet.Query{})
	if err != nil {
		return err
	}
	var bars []bar
	var most int64 = 1
	for _, g := range rd.Groups {
		most = max(most, g.Hosts)
	}
	for _, g := range rd.Groups {
		v := g.By[by]
		label := v
		if label == "" {
			label = "(none)"
		}
		bars = append(bars, bar{Label: label, Hosts: g.Hosts, Boots: g.BootsToday, Survives: g.Survives2023OnlyShim, Only2011: g.Only2011,
			Width: float64(g.Hosts) * 100 / float64(most), Link: "/ui/hosts?" + by + "=" + url.QueryEscape(v)})
	}
	sort.SliceStable(bars, func(i, j int) bool { return bars[i].Hosts > bars[j].Hosts })
	d.render(w, "home", map[string]any{"R": rd, "By": by, "Dims": store.Dims(), "Bars": bars})
	return nil
}

func (d *Dashboard) hosts(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	q := fleet.Query{Dims: map[string]string{}, Status: v.Get("status"), Hostname: v.Get("q")}
	for _, dim := range store.Dims() {
		if x := v.Get(dim); x != "" {
			q.Dims[dim] = x
		}
	}
	hs, err := d.srv.Fleet.Hosts(r.Context(), q)
	if err != nil {
		return err
	}
	total := len(hs)
	if len(hs) > 500 {
		hs = hs[:500]
	}
	d.render(w, "hosts", map[string]any{"Hosts": hs, "Total": total, "Q": q, "Statuses": fleet.Statuses})
	return nil
}

func (d *Dashboard) host(w http.ResponseWriter, r *http.Request) error {
	h, err := d.srv.Fleet.Host(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	d.render(w, "host", map[string]any{"H": h})
	return nil
}

func (d *Dashboard) canaries(w http.ResponseWriter, r *http.Request) error {
	dims := r.URL.Query().Get("dims")
	if dims == "" {
		dims = "platform,model,release,lineage,channel"
	}
	o := fleet.CanaryOptions{Dims: strings.Split(dims, ","), Pairwise: r.URL.Query().Get("pairwise") != ""}
	if n, err := strconv.Atoi(r.URL.Query().Get("perGroup")); err == nil {
		o.PerGroup = n
	}
	c, err := d.srv.Fleet.Canaries(r.Context(), o)
	if err != nil {
		return err
	}
	d.render(w, "canaries", map[string]any{"C": c, "DimsText": dims})
	return nil
}

func (d *Dashboard) whatifForm(w http.ResponseWriter, r *http.Request) error {
	d.render(w, "whatif", map[string]any{})
	return nil
}

func (d *Dashboard) whatif(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return &fleet.InputError{Reason: fmt.Sprintf("the form could not be read: %v", err)}
	}
	req := fleet.ChangeRequest{Hosts: r.FormValue("hosts"), SBATKeyword: r.FormValue("sbatKeyword")}
	read := func(field string) ([]byte, string, error) {
		f, h, err := r.FormFile(field)
		if errors.Is(err, http.ErrMissingFile) {
			return nil, "", nil
		}
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		b, err := io.ReadAll(f)
		return b, h.Filename, err
	}
	var err error
	if req.ShimPackage, req.ShimPackageName, err = read("shimPackage"); err != nil {
		return err
	}
	if req.DBXUpdate, req.DBXUpdateName, err = read("dbxUpdate"); err != nil {
		return err
	}
	if req.SBATKeyword == "" {
		if req.SBATLevel, req.SBATLevelName, err = read("sbatLevel"); err != nil {
			return err
		}
		req.SBATPick = r.FormValue("sbatPick")
	}
	if cert, name, err := read("dbAdd"); err != nil {
		return err
	} else if cert != nil {
		req.DBAdd, req.DBAddNames = [][]byte{cert}, []string{name}
	}
	c, err := req.Parse()
	if err != nil {
		return err
	}
	q, err := fleet.ParseSelector(req.Hosts)
	if err != nil {
		return err
	}
	res, err := d.srv.Fleet.WhatIf(r.Context(), c, q)
	if err != nil {
		return err
	}
	d.render(w, "whatif", map[string]any{"W": res, "Hosts": req.Hosts})
	return nil
}
