package target

import (
	"slices"
	"testing"
	"testing/fstest"
)

func TestKernelsVersionOrder(t *testing.T) {
	root := fstest.MapFS{
		"boot/vmlinuz-6.1.0-9-amd64":   {Data: []byte("k")},
		"boot/vmlinuz-6.1.0-10-amd64":  {Data: []byte("k")},
		"boot/vmlinuz-5.10.0-28-amd64": {Data: []byte("k")},
		"boot/vmlinuz-6.10.0-1-amd64":  {Data: []byte("k")},
		"boot/vmlinuz-dir/x":           {Data: []byte("not a kernel")},
		"boot/initrd.img-6.1.0-10":     {Data: []byte("i")},
	}
	want := []string{"boot/vmlinuz-6.10.0-1-amd64", "boot/vmlinuz-6.1.0-10-amd64", "boot/vmlinuz-6.1.0-9-amd64", "boot/vmlinuz-5.10.0-28-amd64"}
	if got := Kernels(root); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := Kernels(fstest.MapFS{}); got != nil {
		t.Errorf("no boot: %v", got)
	}
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"6.1.0-9", "6.1.0-10", -1}, {"6.1.0-10", "6.1.0-9", 1}, {"6.1.0-09", "6.1.0-9", 0},
		{"6.1.0-10-amd64", "6.1.0-10-arm64", -1}, {"6.1", "6.1.0", -1}, {"", "", 0},
	} {
		if got := CompareKernelVersions(c.a, c.b); got != c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
