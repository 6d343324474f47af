package luks_test

import (
	"bytes"
	"testing"

	"github.com/vouch-dev/vouch/internal/luks"
)

// FuzzRead reads arbitrary bytes as a LUKS volume: an error or a header,
// never a panic. Seeds (testdata/fuzz/FuzzRead) are the first 32 KiB of
// volumes made by Debian's cryptsetup: tokens from clevis luks bind and
// systemd-cryptenroll against swtpm, a damaged primary copy, a LUKS1 header.
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := luks.Read(bytes.NewReader(b), int64(len(b)), "fuzz")
		if err == nil {
			h.Sealed()
		}
	})
}
