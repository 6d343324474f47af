// Package integrity checks the files installed packages put on a root file system
// against the digests their package manager recorded — dpkg's info/*.md5sums and
// the conffile digests of the status file, rpm's file digests, apk's Z: checksums
// — and finds executables in system paths that no package owns.
//
// For dpkg it follows debsums' rules (debsums --root ROOT -a): conffiles are
// checked against the status file, not md5sums; a diverted file is checked where
// the diversion put it; paths excluded by dpkg's path-exclude options are not
// missing; a changed file another package has taken over (or replaced, with the
// replacing package's digest) is not reported. Where vouch reports more than
// debsums (a file now a symlink or a directory is "replaced"), the tests say so.
//
// Every file is read once, by a pool of workers, hashing with every algorithm
// its owners need in the same pass.
package integrity

import (
	"cmp"
	"context"
	"crypto"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/rootfs"
)

// Problems.
const (
	Modified = "modified"
	Missing  = "missing"
	Replaced = "replaced" // a file is now a symlink, a directory or a special file
	Unowned  = "unowned"
)

// Problem is one file that does not match what its package recorded, or an
// executable no package owns.
type Problem struct {
	Path     string `json:"path"`              // absolute, as the package recorded it (escaped when not UTF-8)
	Package  string `json:"package,omitempty"` // dpkg's binary:Package, rpm/apk name; empty for unowned
	Manager  string `json:"manager,omitempty"`
	Problem  string `json:"problem"`
	Conffile bool   `json:"conffile,omitempty"`
	Expected string `json:"expected,omitempty"` // recorded digest
	Actual   string `json:"actual,omitempty"`   // digest found
	Detail   string `json:"detail,omitempty"`
}

// Result is what Verify found.
type Result struct {
	Problems []Problem `json:"problems"`
	// Issues are inputs that could not be read or parsed: a missing md5sums
	// file, a malformed line, an unreadable file. The rest was still checked.
	Issues   []pkgdb.Issue `json:"issues,omitempty"`
	Packages int           `json:"packages"`
	Files    int           `json:"files"` // distinct files hashed
	Bytes    int64         `json:"bytes"` // bytes hashed
}

// Options change what Verify does.
type Options struct {
	// Workers hashing files; 0 means twice GOMAXPROCS.
	Workers int
	// SkipFiles skips the digest check (for an unowned-executables-only run).
	SkipFiles bool
	// Unowned also walks the system executable directories for executables no
	// package owns.
	Unowned bool
	// SkipConffiles leaves configuration files out (debsums without -a).
	SkipConffiles bool
}

// expectation is one package's record of one file.
type expectation struct {
	pkg      *pkgdb.Package
	path     string // as recorded, absolute
	digest   string
	algo     crypto.Hash
	conffile bool
}

// job is one file on disk and every record that names it.
type job struct {
	resolved string // fs path after symlink resolution of the parents
	expects  []expectation
}

// Verify checks every installed file of the packages in inv against root.
// inv must have been read with Files set for the unowned walk.
func Verify(ctx context.Context, root *rootfs.FS, inv *pkgdb.Inventory, opts Options) (*Result, error) {
	res := &Result{}
	v := &verifier{root: root, inv: inv, res: res, tree: newTree(root), info: pkgdb.OpenDpkgInfo(root)}
	for i := range inv.Packages {
		p := &inv.Packages[i]
		if p.Status == "installed" || p.Status == "half-configured" {
			res.Packages++
		}
	}
	if !opts.SkipFiles {
		jobs := v.plan()
		if err := v.run(ctx, jobs, opts.Workers); err != nil {
			return res, err
		}
	}
	if opts.Unowned {
		if err := v.unowned(ctx); err != nil {
			return res, err
		}
	}
	if opts.SkipConffiles {
		res.Problems = slices.DeleteFunc(res.Problems, func(p Problem) bool { return p.Conffile })
	}
	slices.SortFunc(res.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Package, b.Package), cmp.Compare(a.Problem, b.Problem))
	})
	slices.SortStableFunc(res.Issues, func(a, b pkgdb.Issue) int { return cmp.Compare(a.Path, b.Path) })
	return res, nil
}

type verifier struct {
	root *rootfs.FS
	inv  *pkgdb.Inventory
	res  *Result
	mu   sync.Mutex

	tree       *tree
	info       *pkgdb.DpkgInfo
	diversions map[string]pkgdb.Diversion // by From, relative
	divertedTo map[string]bool            // relative To paths
	excludes   []pathRule
	owners     map[string][]string // dpkg: "/path" as listed -> package keys
}

func (v *verifier) issue(i pkgdb.Issue) {
	v.mu.Lock()
	v.res.Issues = append(v.res.Issues, i)
	v.mu.Unlock()
}

func (v *verifier) problem(p Problem) {
	v.mu.Lock()
	v.res.Problems = append(v.res.Problems, p)
	v.mu.Unlock()
}

// plan builds the jobs: one per distinct file on disk.
func (v *verifier) plan() []*job {
	byPath := map[string]*job{}
	var order []*job
	add := func(e expectation) {
		rel := strings.TrimPrefix(e.path, "/")
		// A diverted file lives where the diversion put it, unless this
		// package made the diversion (debsums' rule).
		if d, ok := v.diversions[rel]; ok && d.Package != e.pkg.Name && d.Package != e.pkg.Key() {
			rel = strings.TrimPrefix(d.To, "/")
		}
		resolved := v.tree.resolveParent(rel)
		j := byPath[resolved]
		if j == nil {
			j = &job{resolved: resolved}
			byPath[resolved] = j
			order = append(order, j)
		}
		j.expects = append(j.expects, e)
	}
	v.loadDpkgMeta()
	for i := range v.inv.Packages {
		p := &v.inv.Packages[i]
		if p.Status != "installed" && p.Status != "half-configured" {
			continue
		}
		switch p.Manager {
		case pkgdb.ManagerDpkg:
			conf := map[string]bool{}
			for _, c := range p.Conffiles {
				if c.RemoveOnUpgrade {
					continue
				}
				conf[strings.TrimPrefix(c.Path, "/")] = true
			}
			sums, file, ok, issues := v.info.MD5Sums(p)
			for _, is := range issues {
				v.issue(is)
			}
			if !ok && len(issues) == 0 {
				v.issue(pkgdb.Issue{Path: file, Reason: fmt.Sprintf("no md5sums for %s: its files cannot be checked", p.Key())})
			}
			for _, s := range sums {
				if conf[s.Path] {
					continue // checked against the status file below
				}
				add(expectation{pkg: p, path: "/" + s.Path, digest: s.Digest, algo: crypto.MD5})
			}
			for _, c := range p.Conffiles {
				if c.RemoveOnUpgrade || !isHexDigest(c.Digest) {
					continue // "newconffile": not configured yet, nothing recorded
				}
				add(expectation{pkg: p, path: c.Path, digest: c.Digest, algo: crypto.MD5, conffile: true})
			}
		default:
			etcIsConfig := p.Manager == pkgdb.ManagerAPK // apk protects etc/ by default
			for _, f := range p.Files {
				if f.Ghost || f.Digest == "" || f.Algo == 0 {
					continue
				}
				conf := f.Config || (etcIsConfig && strings.HasPrefix(f.Path, "/etc/"))
				add(expectation{pkg: p, path: f.Path, digest: f.Digest, algo: f.Algo, conffile: conf})
			}
		}
	}
	// Directory order: the image readers cache inodes, and files of one
	// directory share its listing.
	slices.SortFunc(order, func(a, b *job) int { return cmp.Compare(a.resolved, b.resolved) })
	return order
}

func isHexDigest(s string) bool {
	if len(s) == 0 || len(s)%2 != 0 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// loadDpkgMeta reads what debsums' rules need: diversions, path-exclude options
// and which packages list which paths.
func (v *verifier) loadDpkgMeta() {
	v.diversions = map[string]pkgdb.Diversion{}
	v.divertedTo = map[string]bool{}
	divs, issues := pkgdb.DpkgDiversions(v.root)
	for _, is := range issues {
		v.issue(is)
	}
	for _, d := range divs {
		v.diversions[strings.TrimPrefix(d.From, "/")] = d
		v.divertedTo[strings.TrimPrefix(d.To, "/")] = true
	}
	v.excludes = dpkgPathRules(v.root)
	v.owners = map[string][]string{}
	for i := range v.inv.Packages {
		p := &v.inv.Packages[i]
		if p.Manager != pkgdb.ManagerDpkg {
			continue
		}
		files := p.Files
		if files == nil {
			var is *pkgdb.Issue
			files, is = v.info.FileList(p)
			if is != nil {
				v.issue(*is)
			}
			p.Files = files
		}
		for _, f := range files {
			v.owners[f.Path] = append(v.owners[f.Path], p.Key())
		}
	}
}

// ownedBy reports whether dpkg-query -S /rel would name exactly this package:
// debsums does not report a changed file that another package took over, or a
// diverted one.
func (v *verifier) ownedBy(rel string, p *pkgdb.Package) bool {
	if p.Manager != pkgdb.ManagerDpkg {
		return true
	}
	if _, ok := v.diversions[rel]; ok || v.divertedTo[rel] {
		return false
	}
	return slices.Contains(v.owners["/"+rel], p.Key())
}

// replacedMatch reports whether a package that Replaces p records digest for
// rel (debsums' is_replaced).
func (v *verifier) replacedMatch(p *pkgdb.Package, rel, digest string) bool {
	for i := range v.inv.Packages {
		q := &v.inv.Packages[i]
		if q.Manager != pkgdb.ManagerDpkg || q.Replaces == "" || !replaces(q.Replaces, p) {
			continue
		}
		sums, _, _, _ := v.info.MD5Sums(q)
		for _, s := range sums {
			if s.Path == rel && s.Digest == digest {
				return true
			}
		}
	}
	return false
}

func (v *verifier) run(ctx context.Context, jobs []*job, workers int) error {
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	ch := make(chan *job)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for j := range ch {
				v.check(j, buf)
			}
		}()
	}
	var err error
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(ch)
	wg.Wait()
	return err
}

func (v *verifier) check(j *job, buf []byte) {
	entry, err := v.tree.entry(j.resolved)
	if err != nil {
		v.issue(pkgdb.Issue{Path: "/" + pkgdb.EscapePath(j.resolved), Reason: err.Error()})
		return
	}
	if entry == nil {
		for _, e := range j.expects {
			rel := strings.TrimPrefix(e.path, "/")
			if e.pkg.Manager == pkgdb.ManagerDpkg && excluded(v.excludes, rel) {
				continue
			}
			v.problem(v.newProblem(e, Missing))
		}
		return
	}
	if mode := entry.Type(); !mode.IsRegular() {
		detail := "now " + describeMode(mode)
		if mode&fs.ModeSymlink != 0 {
			if t, err := v.root.ReadLink(j.resolved); err == nil {
				detail += " to " + pkgdb.EscapePath(t)
			}
		}
		for _, e := range j.expects {
			p := v.newProblem(e, Replaced)
			p.Detail = detail
			v.problem(p)
		}
		return
	}
	if !utf8.ValidString(j.resolved) {
		// io/fs paths are UTF-8: such a file can be seen in its directory but
		// not opened. Its presence and type were checked above.
		v.issue(pkgdb.Issue{Path: "/" + pkgdb.EscapePath(j.resolved), Reason: fmt.Sprintf("file name (of package %s) is not valid UTF-8; it is present but its content cannot be read through io/fs, so it was not hashed", j.expects[0].pkg.Key())})
		return
	}
	sums, n, err := v.hashFile(j, buf)
	v.mu.Lock()
	v.res.Files++
	v.res.Bytes += n
	v.mu.Unlock()
	if err != nil {
		v.issue(pkgdb.Issue{Path: "/" + pkgdb.EscapePath(j.resolved), Reason: "read: " + err.Error()})
		return
	}
	for _, e := range j.expects {
		got := sums[e.algo]
		if got == e.digest {
			continue
		}
		rel := strings.TrimPrefix(e.path, "/")
		if !v.ownedBy(rel, e.pkg) || (e.pkg.Manager == pkgdb.ManagerDpkg && v.replacedMatch(e.pkg, rel, got)) {
			continue
		}
		p := v.newProblem(e, Modified)
		p.Actual = got
		v.problem(p)
	}
}

func (v *verifier) newProblem(e expectation, what string) Problem {
	return Problem{Path: pkgdb.EscapePath(e.path), Package: e.pkg.Key(), Manager: e.pkg.Manager,
		Problem: what, Conffile: e.conffile, Expected: e.digest}
}

// hashFile reads the file once, feeding every hash its records need.
func (v *verifier) hashFile(j *job, buf []byte) (map[crypto.Hash]string, int64, error) {
	hs := map[crypto.Hash]hash.Hash{}
	var ws []io.Writer
	for _, e := range j.expects {
		if _, ok := hs[e.algo]; ok {
			continue
		}
		h := newHash(e.algo)
		if h == nil {
			continue
		}
		hs[e.algo] = h
		ws = append(ws, h)
	}
	f, err := v.root.Open(j.resolved)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var w io.Writer = io.MultiWriter(ws...)
	if len(ws) == 1 {
		w = ws[0]
	}
	n, err := io.CopyBuffer(w, onlyReader{f}, buf)
	if err != nil {
		return nil, n, err
	}
	out := make(map[crypto.Hash]string, len(hs))
	for a, h := range hs {
		out[a] = hex.EncodeToString(h.Sum(nil))
	}
	return out, n, nil
}

// onlyReader hides WriterTo/ReaderFrom so CopyBuffer uses our large buffer.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func newHash(a crypto.Hash) hash.Hash {
	switch a {
	case crypto.MD5:
		return md5.New()
	case crypto.SHA1:
		return sha1.New()
	case crypto.SHA224:
		return sha256.New224()
	case crypto.SHA256:
		return sha256.New()
	case crypto.SHA384:
		return sha512.New384()
	case crypto.SHA512:
		return sha512.New()
	}
	return nil
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}
