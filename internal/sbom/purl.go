package sbom

import (
	"sort"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/pkgdb"
)

// PURL returns the package URL of an installed package (purl-spec
// PURL-TYPES.rst: deb, rpm, apk): the namespace is the distribution's os-release
// ID, the version the package manager's full version (rpm without the epoch,
// which is the epoch= qualifier), and the qualifiers arch, distro (ID-VERSION_ID)
// and epoch, sorted.
func PURL(p *pkgdb.Package, osInfo *osrelease.Info) string {
	typ := map[string]string{pkgdb.ManagerDpkg: "deb", pkgdb.ManagerRPM: "rpm", pkgdb.ManagerAPK: "apk"}[p.Manager]
	if typ == "" {
		typ = "generic"
	}
	ns := ""
	distro := ""
	if osInfo != nil {
		ns = strings.ToLower(osInfo.ID)
		distro = ns
		if osInfo.VersionID != "" {
			distro += "-" + osInfo.VersionID
		}
	}
	if ns == "" {
		ns = map[string]string{"deb": "debian", "rpm": "rpm", "apk": "alpine"}[typ]
	}
	version := p.Version
	q := map[string]string{}
	if p.Architecture != "" {
		q["arch"] = p.Architecture
	}
	if distro != "" {
		q["distro"] = distro
	}
	if p.Manager == pkgdb.ManagerRPM && p.Epoch != nil {
		q["epoch"] = strconv.Itoa(*p.Epoch)
		if _, rest, ok := strings.Cut(version, ":"); ok {
			version = rest
		}
	}
	var b strings.Builder
	b.WriteString("pkg:" + typ + "/" + escape(ns) + "/" + escape(p.Name))
	if version != "" {
		b.WriteString("@" + escape(version))
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + escape(q[k]))
	}
	return b.String()
}

// escape percent-encodes everything but RFC 3986 unreserved characters, which
// the purl spec always allows (':' in an epoch and '+' in a Debian version
// become %3A and %2B).
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(c)>>4, 16)+strconv.FormatInt(int64(c)&15, 16)))
	}
	return b.String()
}
