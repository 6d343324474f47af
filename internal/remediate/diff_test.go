package remediate

import "testing"

func TestUnifiedDiff(t *testing.T) {
	got := unifiedDiff("etc/x", []byte("a\nb\nc\n"), []byte("a\nB\nc\nd\n"), true)
	want := "--- a/etc/x\n+++ b/etc/x\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n"
	if got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
	if d := unifiedDiff("etc/x", []byte("same\n"), []byte("same\n"), true); d != "" {
		t.Errorf("equal texts gave %q", d)
	}
}
