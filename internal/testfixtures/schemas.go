package testfixtures

import (
	"os"
	"path/filepath"
	"testing"
)

// Schema returns the path of a JSON schema fetched by scripts/fetch-schemas.sh
// into .cache/schemas (e.g. "spdx-2.3.schema.json"), fetching it when missing.
func Schema(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Repo(), ".cache", "schemas", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	mu.Lock()
	defer mu.Unlock()
	script(t, "fetch-schemas.sh")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("schema %s was not fetched by scripts/fetch-schemas.sh: %v", name, err)
	}
	return p
}
