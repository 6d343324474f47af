package measure

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser: it must return a log or a
// *ParseError, never panic, and whatever parses must replay, explain and
// predict an empty change without panicking. Seeds: the real OVMF+swtpm log
// and cuts of it (testdata/fuzz/FuzzParse holds more).
func FuzzParse(f *testing.F) {
	b, err := os.ReadFile("testdata/ovmf-swtpm-debian12.log")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add(b[:100])
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint32(c[len(c)-200:], 0xffffffff)
	f.Add(c)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		lg, err := Parse(data, "fuzz")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		lg.Replay()
		lg.Explain()
		if _, err := Predict(lg, Change{SBATLevel: []byte("sbat,1,2099010100\nshim,9\n")}, Installed{}); err != nil {
			t.Logf("predict: %v", err)
		}
	})
}
