package osrelease

import (
	"strings"
	"time"
)

// Support is the vendor support window of one release.
type Support struct {
	ID        string // os-release ID
	Version   string // VERSION_ID, or a prefix of it ("9" covers "9.4")
	Name      string
	Released  string // YYYY-MM-DD
	EndOfLife string // end of the vendor's standard (security) support, YYYY-MM-DD
	Source    string
}

// lifecycleAsOf is when the table below was last checked against the sources.
const lifecycleAsOf = "2026-11-23"

// lifecycle lists the vendor end-of-support dates of common cloud distributions.
// Dates are standard security support, not paid extended support (ELTS, ESM,
// ELS), which a fleet cannot assume. Sources: debian.org/releases and
// wiki.debian.org/LTS; ubuntu.com/about/release-cycle; access.redhat.com/support/
// policy/updates/errata; learn.microsoft.com (Azure Linux); aws.amazon.com/
// amazon-linux-2/faqs and docs.aws.amazon.com/linux/al2023; fedoraproject.org
// wiki Releases; SUSE lifecycle pages; almalinux.org and rockylinux.org.
var lifecycle = []Support{
	{"debian", "10", "Debian 10 (buster)", "2019-07-06", "2024-06-30", "wiki.debian.org/LTS"},
	{"debian", "11", "Debian 11 (bullseye)", "2021-08-14", "2026-08-31", "wiki.debian.org/LTS"},
	{"debian", "12", "Debian 12 (bookworm)", "2023-06-10", "2028-06-30", "wiki.debian.org/LTS"},
	{"debian", "13", "Debian 13 (trixie)", "2025-08-09", "2030-06-30", "wiki.debian.org/LTS"},
	{"ubuntu", "18.04", "Ubuntu 18.04 LTS", "2018-04-26", "2023-05-31", "ubuntu.com/about/release-cycle"},
	{"ubuntu", "20.04", "Ubuntu 20.04 LTS", "2020-04-23", "2025-05-31", "ubuntu.com/about/release-cycle"},
	{"ubuntu", "22.04", "Ubuntu 22.04 LTS", "2022-04-21", "2027-06-01", "ubuntu.com/about/release-cycle"},
	{"ubuntu", "24.04", "Ubuntu 24.04 LTS", "2024-04-25", "2029-05-31", "ubuntu.com/about/release-cycle"},
	{"ubuntu", "24.10", "Ubuntu 24.10", "2024-10-10", "2025-07-10", "ubuntu.com/about/release-cycle"},
	{"ubuntu", "25.04", "Ubuntu 25.04", "2025-04-17", "2026-01-15", "ubuntu.com/about/release-cycle"},
	{"ubuntu", "25.10", "Ubuntu 25.10", "2025-10-09", "2026-07-09", "ubuntu.com/about/release-cycle"},
	{"ubuntu", "26.04", "Ubuntu 26.04 LTS", "2026-04-23", "2031-05-31", "ubuntu.com/about/release-cycle"},
	{"rhel", "7", "Red Hat Enterprise Linux 7", "2014-06-10", "2024-06-30", "access.redhat.com/support/policy/updates/errata"},
	{"rhel", "8", "Red Hat Enterprise Linux 8", "2019-05-07", "2029-05-31", "access.redhat.com/support/policy/updates/errata"},
	{"rhel", "9", "Red Hat Enterprise Linux 9", "2022-05-18", "2032-05-31", "access.redhat.com/support/policy/updates/errata"},
	{"rhel", "10", "Red Hat Enterprise Linux 10", "2025-05-20", "2035-05-31", "access.redhat.com/support/policy/updates/errata"},
	{"almalinux", "8", "AlmaLinux 8", "2021-03-30", "2029-03-01", "wiki.almalinux.org"},
	{"almalinux", "9", "AlmaLinux 9", "2022-05-26", "2032-05-31", "wiki.almalinux.org"},
	{"rocky", "8", "Rocky Linux 8", "2021-06-21", "2029-05-31", "rockylinux.org"},
	{"rocky", "9", "Rocky Linux 9", "2022-07-14", "2032-05-31", "rockylinux.org"},
	{"centos", "7", "CentOS Linux 7", "2014-07-07", "2024-06-30", "centos.org"},
	{"centos", "8", "CentOS Linux 8", "2019-09-24", "2021-12-31", "centos.org"},
	{"azurelinux", "3.0", "Azure Linux 3.0", "2024-07-31", "2027-07-31", "learn.microsoft.com/azure/azure-linux"},
	{"mariner", "2.0", "CBL-Mariner 2.0", "2022-07-01", "2025-07-31", "learn.microsoft.com/azure/azure-linux"},
	{"amzn", "2", "Amazon Linux 2", "2018-06-26", "2026-06-30", "aws.amazon.com/amazon-linux-2/faqs"},
	{"amzn", "2023", "Amazon Linux 2023", "2023-03-15", "2029-06-30", "docs.aws.amazon.com/linux/al2023"},
	{"fedora", "41", "Fedora 41", "2024-10-29", "2025-12-15", "fedoraproject.org/wiki/Releases"},
	{"fedora", "42", "Fedora 42", "2025-04-15", "2026-05-13", "fedoraproject.org/wiki/Releases"},
	{"fedora", "43", "Fedora 43", "2025-10-28", "2026-12-09", "fedoraproject.org/wiki/Releases"},
	{"sles", "15.6", "SUSE Linux Enterprise Server 15 SP6", "2024-06-20", "2025-12-31", "suse.com/lifecycle"},
	{"sles", "15.7", "SUSE Linux Enterprise Server 15 SP7", "2025-06-17", "2031-07-31", "suse.com/lifecycle"},
}

// LifecycleAsOf says when the support table was last checked.
func LifecycleAsOf() string { return lifecycleAsOf }

// Lookup finds the support window for an os-release identity.
func Lookup(info *Info) (Support, bool) {
	best := -1
	for i, s := range lifecycle {
		if s.ID != info.ID {
			continue
		}
		if info.VersionID == s.Version || strings.HasPrefix(info.VersionID, s.Version+".") {
			if best < 0 || len(s.Version) > len(lifecycle[best].Version) {
				best = i
			}
		}
	}
	if best < 0 {
		return Support{}, false
	}
	return lifecycle[best], true
}

// Supported reports whether s is still supported at now.
func (s Support) Supported(now time.Time) bool {
	end, err := time.Parse(time.DateOnly, s.EndOfLife)
	if err != nil {
		return false
	}
	return now.Before(end.AddDate(0, 0, 1))
}
