// Package checks is the one explicit list of every check vouch runs, grouped into
// named suites. Adding a check means adding it here; a test fails when a check
// literal exists anywhere in the tree but is missing from this list.
package checks

import (
	"github.com/vouch-dev/vouch/internal/baseline"
	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/pkgcheck"
	"github.com/vouch-dev/vouch/internal/secureboot"
)

// Suite names.
const (
	SuiteSecureBoot = "secureboot"
	SuiteBaseline   = "baseline"
	SuiteHardening  = "hardening"
	SuitePackages   = "packages"
	SuiteCloudImage = "cloud-image"
	SuiteMeasured   = measure.Suite
)

// All returns every check, in the order reports list them.
func All() []check.Check {
	var all []check.Check
	all = append(all, platformChecks()...)
	all = append(all, secureboot.Checks()...)
	all = append(all, measure.Checks()...)
	all = append(all, baseline.Checks()...)
	all = append(all, pkgcheck.Checks()...)
	return all
}

// Suites returns the suite names in order, each once.
func Suites() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range All() {
		if !seen[c.Suite] {
			seen[c.Suite] = true
			out = append(out, c.Suite)
		}
	}
	return out
}
