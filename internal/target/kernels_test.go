package target

import (
	"slices"
	"testing"
	"testing/fstest"
)

func TestKernelsVersionOrder(t *testing.T) {
	root := fstest.MapFS{
		"boot/vmlinuz-9.1.0-9-flavour-a":   {Data: []byte("k")},
		"boot/vmlinuz-9.1.0-10-flavour-a":  {Data: []byte("k")},
		"boot/vmlinuz-8.10.0-28-flavour-a": {Data: []byte("k")},
		"boot/vmlinuz-9.10.0-1-flavour-a":  {Data: []byte("k")},
		"boot/vmlinuz-dir/x":               {Data: []byte("not a kernel")},
		"boot/initrd.img-9.1.0-10":         {Data: []byte("i")},
	}
	want := []string{"boot/vmlinuz-9.10.0-1-flavour-a", "boot/vmlinuz-9.1.0-10-flavour-a", "boot/vmlinuz-9.1.0-9-flavour-a", "boot/vmlinuz-8.10.0-28-flavour-a"}
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
		{"9.1.0-9", "9.1.0-10", -1}, {"9.1.0-10", "9.1.0-9", 1}, {"9.1.0-09", "9.1.0-9", 0},
		{"9.1.0-10-flavour-a", "9.1.0-10-flavour-b", -1}, {"9.1", "9.1.0", -1}, {"", "", 0},
	} {
		if got := CompareKernelVersions(c.a, c.b); got != c.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
