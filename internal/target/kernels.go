package target

import (
	"cmp"
	"io/fs"
	"slices"
	"strings"
)

// Kernels lists the kernels of a root file system: the regular files
// boot/vmlinuz-*, as paths relative to the root, newest first by version
// order (CompareKernelVersions: X.Y.Z-10 is newer than X.Y.Z-9). It is the
// one kernel finder of the tree (inspect, the secure boot boot paths, the
// gate's next stages, the baseline's kernel config).
func Kernels(root fs.FS) []string {
	entries, err := fs.ReadDir(root, "boot")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "vmlinuz-") && e.Type().IsRegular() {
			out = append(out, "boot/"+e.Name())
		}
	}
	slices.SortFunc(out, func(a, b string) int { return CompareKernelVersions(b, a) })
	return out
}

// CompareKernelVersions orders kernel versions or file names: runs of
// digits compare as numbers, other runs as text ("9.1.0-9-x" <
// "9.1.0-10-x" < "9.10.0-1-x").
func CompareKernelVersions(a, b string) int {
	for a != "" && b != "" {
		ra, restA := nextRun(a)
		rb, restB := nextRun(b)
		if isDigit(ra[0]) && isDigit(rb[0]) {
			na, nb := strings.TrimLeft(ra, "0"), strings.TrimLeft(rb, "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
		} else if c := strings.Compare(ra, rb); c != 0 {
			return c
		}
		a, b = restA, restB
	}
	return cmp.Compare(len(a), len(b))
}

// nextRun splits s into its first run of digits or of non-digits and the
// rest.
func nextRun(s string) (string, string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
