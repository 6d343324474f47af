package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
)

// TestRenderSortedMaps: what the CLI prints from a map comes out in key
// order, the same on every run (Go randomises map iteration, so twenty runs
// of an unsorted loop would differ).
func TestRenderSortedMaps(t *testing.T) {
	dbx := secureboot.DBXCount{"X509": 2, "SHA256": 443, "EFI_CERT_SHA1": 1, "X509_SHA256": 7}
	want := "1 EFI_CERT_SHA1; 443 SHA256; 2 X509; 7 X509_SHA256"
	render := map[string]func() string{
		"secureboot firmware dbx": func() string {
			var b bytes.Buffer
			r := &secureboot.Report{Firmware: &secureboot.Summary{Source: "test", DBX: dbx}}
			if err := writeSecureBoot(&b, &target.Target{Path: "root", Kind: target.KindDirectory}, r); err != nil {
				t.Fatal(err)
			}
			return b.String()
		},
		"revocation dbx entries": func() string {
			var b bytes.Buffer
			writeRevocation(&b, &secureboot.RevocationImpact{Firmware: "test",
				DBX: &secureboot.DBXImpact{DBXUpdate: &secureboot.DBXUpdate{Source: "u.bin", Form: "f"}, Entries: dbx}})
			return b.String()
		},
	}
	for name, f := range render {
		t.Run(name, func(t *testing.T) {
			first := f()
			if !strings.Contains(first, want) {
				t.Fatalf("output lacks %q:\n%s", want, first)
			}
			for range 20 {
				if got := f(); got != first {
					t.Fatalf("output changed between runs:\n%s\n---\n%s", first, got)
				}
			}
		})
	}
}

// TestInstallHookFlagOrder: with more than one firmware flag given, the
// error is the same on every run.
func TestInstallHookFlagOrder(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "vouch"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var first string
	for i := range 20 {
		code, _, errs := run(t, "gate", "install-hook", "--root", root, "--kind", "apt", "--vouch", "/vouch", "--vars", "rel.fd", "--efivars", "rel", "--firmware", "nope")
		if code != 2 {
			t.Fatalf("exit %d, want 2 (usage): %s", code, errs)
		}
		if i == 0 {
			first = errs
		} else if errs != first {
			t.Fatalf("error changed between runs:\n%s\n---\n%s", first, errs)
		}
	}
}
