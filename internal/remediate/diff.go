package remediate

import (
	"fmt"
	"strings"
)

// unifiedDiff returns a unified diff (3 lines of context) of two texts, ""
// when they are equal. Configuration files are small, so a plain LCS table is
// enough.
func unifiedDiff(name string, oldText, newText []byte, oldExists bool) string {
	if oldExists && string(oldText) == string(newText) {
		return ""
	}
	a, b := splitLinesKeep(string(oldText)), splitLinesKeep(string(newText))
	var sb strings.Builder
	from := "a/" + name
	if !oldExists {
		from = "/dev/null"
	}
	fmt.Fprintf(&sb, "--- %s\n+++ b/%s\n", from, name)
	const ctx = 3
	all := diffOps(a, b)
	type span struct{ lo, hi int }
	var spans []span
	for k, o := range all {
		if o.kind == ' ' {
			continue
		}
		lo, hi := max(k-ctx, 0), min(k+ctx+1, len(all))
		if n := len(spans); n > 0 && lo <= spans[n-1].hi {
			spans[n-1].hi = max(spans[n-1].hi, hi)
			continue
		}
		spans = append(spans, span{lo, hi})
	}
	for _, sp := range spans {
		aStart, bStart := 1, 1
		for _, o := range all[:sp.lo] {
			if o.kind != '+' {
				aStart++
			}
			if o.kind != '-' {
				bStart++
			}
		}
		aLen, bLen := 0, 0
		for _, o := range all[sp.lo:sp.hi] {
			if o.kind != '+' {
				aLen++
			}
			if o.kind != '-' {
				bLen++
			}
		}
		if aLen == 0 {
			aStart--
		}
		if bLen == 0 {
			bStart--
		}
		fmt.Fprintf(&sb, "@@ -%d,%d +%d,%d @@\n", aStart, aLen, bStart, bLen)
		for _, o := range all[sp.lo:sp.hi] {
			sb.WriteByte(o.kind)
			sb.WriteString(strings.TrimSuffix(o.text, "\n"))
			sb.WriteByte('\n')
			if !strings.HasSuffix(o.text, "\n") {
				sb.WriteString("\\ No newline at end of file\n")
			}
		}
	}
	return sb.String()
}

func splitLinesKeep(s string) []string {
	if s == "" {
		return nil
	}
	out := strings.SplitAfter(s, "\n")
	if out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

type diffOp struct {
	kind byte
	text string
}

func diffOps(a, b []string) []diffOp {
	// Trim common prefix and suffix first: most edits touch a few lines.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	am, bm := a[pre:len(a)-suf], b[pre:len(b)-suf]
	n, m := len(am), len(bm)
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if am[i] == bm[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []diffOp
	for _, l := range a[:pre] {
		out = append(out, diffOp{' ', l})
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && am[i] == bm[j]:
			out = append(out, diffOp{' ', am[i]})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, diffOp{'-', am[i]})
			i++
		default:
			out = append(out, diffOp{'+', bm[j]})
			j++
		}
	}
	for _, l := range a[len(a)-suf:] {
		out = append(out, diffOp{' ', l})
	}
	return out
}
