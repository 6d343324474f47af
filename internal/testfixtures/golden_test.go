package testfixtures

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"boot/vmlinuz-6.1.0-57-amd64":                    "boot/vmlinuz-{kernel}",
		"linux-image-6.1.0-10-cloud-amd64 6.1.0-9-amd64": "linux-image-{kernel} {kernel}",
		"6.12.48-1-arm64":                                "{kernel}",
		"vmlinuz-6.1 and 2.06-13+deb12u1 stay":           "vmlinuz-6.1 and 2.06-13+deb12u1 stay",
	} {
		if got := string(Normalize([]byte(in))); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
