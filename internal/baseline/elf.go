package baseline

import (
	"fmt"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/elfscan"
)

// elfScan reads the binaries of the root once per state.
func (s *State) elfScan() (*elfscan.Result, error) {
	return cached(s, "elf", func() (*elfscan.Result, error) { return elfscan.Scan(s.Root) })
}

// elfRule aggregates one property over all binaries: applies selects the
// binaries the property is about, bad the ones that lack it.
func elfRule(what string, applies func(*elfscan.Info) bool, bad func(*elfscan.Info) bool, why string) Control {
	return Control{
		Remedy: "Rebuild the listed binaries with the distribution's hardening flags (" + why + "); a built binary cannot be fixed in place, so vouch does not remediate this.",
		Audit: func(s *State) check.Result {
			sc, err := s.elfScan()
			if err != nil {
				return errorf("%v", err)
			}
			n := 0
			var failing []string
			for _, b := range sc.Binaries {
				if !applies(b) {
					continue
				}
				n++
				if bad(b) {
					failing = append(failing, "/"+b.Path)
				}
			}
			var unread []string
			for _, u := range sc.Unreadable {
				unread = append(unread, "unreadable: /"+u)
			}
			if n == 0 && len(unread) == 0 {
				return na("no binary in the system paths that " + what + " applies to")
			}
			if len(failing) > 0 {
				return fail(fmt.Sprintf("%d of %d binaries lack %s", len(failing), n, what), append(failing, unread...)...)
			}
			if len(unread) > 0 {
				r := errorf("%d binaries could not be read (%s); the %d that could all have %s", len(unread), strings.TrimPrefix(unread[0], "unreadable: "), n, what)
				r.Evidence = unread
				return r
			}
			return pass(fmt.Sprintf("all %d binaries have %s", n, what))
		},
	}
}
