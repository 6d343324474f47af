package testfixtures

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"boot/vmlinuz-9.8.7-65-amd64":                    "boot/vmlinuz-{kernel}",
		"linux-image-9.8.7-10-cloud-amd64 9.8.7-9-amd64": "linux-image-{kernel} {kernel}",
		"9.87.65-1-arm64":                                "{kernel}",
		"vmlinuz-9.8 and 9.87-65+deb99u1 stay":           "vmlinuz-9.8 and 9.87-65+deb99u1 stay",
	} {
		if got := string(Normalize([]byte(in))); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
