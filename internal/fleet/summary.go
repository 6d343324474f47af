package fleet

// BaselineSummary is a host's baseline result in counts: the agent runs the
// suites of `vouch baseline` on its root and sends only how many rules of
// each suite passed, failed, erred or did not apply.
type BaselineSummary struct {
	Suites []SuiteCounts `json:"suites"`
}

// SuiteCounts are one suite's counts.
type SuiteCounts struct {
	Suite         string `json:"suite"`
	Pass          int    `json:"pass"`
	Fail          int    `json:"fail"`
	Error         int    `json:"error"`
	NotApplicable int    `json:"notApplicable"`
}

// IntegritySummary is a host's package integrity in counts (`vouch packages
// verify`): files that differ from what their package recorded, files
// missing, of how many files and packages checked.
type IntegritySummary struct {
	Packages int `json:"packages"`
	Files    int `json:"files"`
	Altered  int `json:"altered"` // modified, or replaced by a link, directory or device
	Missing  int `json:"missing"`
	// Issues are package-database entries that could not be read.
	Issues int `json:"issues"`
}

// maxSuites bounds a report's baseline suites.
const maxSuites = 64

func (s *BaselineSummary) validate() error {
	if s == nil {
		return nil
	}
	if len(s.Suites) > maxSuites {
		return inputErr("baseline: %d suites: at most %d", len(s.Suites), maxSuites)
	}
	for i, c := range s.Suites {
		if err := checkText(fmtIndex("baseline.suites", i)+".suite", c.Suite); err != nil {
			return err
		}
		if c.Pass < 0 || c.Fail < 0 || c.Error < 0 || c.NotApplicable < 0 {
			return inputErr("baseline.suites[%d]: negative count", i)
		}
	}
	return nil
}

func (s *IntegritySummary) validate() error {
	if s != nil && (s.Packages < 0 || s.Files < 0 || s.Altered < 0 || s.Missing < 0 || s.Issues < 0) {
		return inputErr("integrity: negative count")
	}
	return nil
}
