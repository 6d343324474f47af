package vm

import (
	"strings"
	"testing"
)

// FuzzConsole feeds arbitrary serial output, split at an arbitrary point, to
// the line splitter: no panic, no control characters or escapes in lines, no
// line longer than maxLine, and the split does not change the result.
func FuzzConsole(f *testing.F) {
	f.Add([]byte("BdsDxe: loading Boot0001\r\n\x1b[0;32m  OK  \x1b[0m\nhost login: "), 7)
	f.Add([]byte("\x1b]0;t\x07\x1b[2J\x1b[01;01H\x9b1m\x1b(B\x1bP\x1b\\x\n"), 3)
	f.Add([]byte(strings.Repeat("y", maxLine+3)), 100)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		whole := newConsole("")
		whole.write(data)
		split := newConsole("")
		if len(data) > 0 {
			cut = ((cut % len(data)) + len(data)) % len(data)
			split.write(data[:cut])
			split.write(data[cut:])
		}
		a, b := whole.Lines(), split.Lines()
		if strings.Join(a, "\n") != strings.Join(b, "\n") || len(a) != len(b) {
			t.Fatalf("split at %d changes the lines:\n%q\n%q", cut, a, b)
		}
		for _, l := range a {
			if len(l) > maxLine {
				t.Fatalf("line of %d bytes", len(l))
			}
			for i := 0; i < len(l); i++ {
				if c := l[i]; c < 0x20 && c != '\t' || c == 0x7f || c == 0x9b {
					t.Fatalf("control byte 0x%02x kept in %q", c, l)
				}
			}
			classify(l)
		}
	})
}

// FuzzParseQMP decodes arbitrary server lines: an error or a message with one
// of greeting, return, error or event; never a panic.
func FuzzParseQMP(f *testing.F) {
	f.Add([]byte(`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7"}, "capabilities": ["oob"]}}`))
	f.Add([]byte(`{"return": {}, "id": 1}`))
	f.Add([]byte(`{"return": {"status": "running", "singlestep": false, "running": true}, "id": 7}`))
	f.Add([]byte(`{"error": {"class": "CommandNotFound", "desc": "The command foo has not been found"}, "id": 2}`))
	f.Add([]byte(`{"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": "RESET", "data": {"guest": true, "reason": "guest-reset"}}`))
	f.Add([]byte(`{"id": 3}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := parseQMP(line)
		if err != nil {
			return
		}
		if m.Greeting == nil && m.Return == nil && m.Error == nil && m.Event == "" {
			t.Fatalf("accepted an empty message: %q", line)
		}
	})
}
