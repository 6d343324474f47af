package baseline

import (
	"context"
	"io"

	"github.com/vouch-dev/vouch/internal/remediate"
)

// Remediate audits rules on the root directory root and fixes the failing
// ones that have a fix, through the remediate engine: each change is printed
// to out (a unified diff for file contents), nothing is written with dryRun,
// and otherwise every file is written atomically after its original is copied
// under remediate.BackupRoot. Running it twice changes nothing the second
// time.
func Remediate(ctx context.Context, root string, rules []Rule, dryRun bool, out io.Writer) (remediate.Summary, error) {
	plan := make([]remediate.Rule[*State], 0, len(rules))
	for _, r := range rules {
		plan = append(plan, remediate.Rule[*State]{ID: r.ID, Remedy: r.Remedy, Audit: r.Evaluate, Fix: r.Fix})
	}
	return remediate.Run(ctx, root, plan, NewState, dryRun, out)
}
