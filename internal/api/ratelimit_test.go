package api_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/vouch-dev/vouch/internal/api"
)

// TestRateLimits: a token bucket per credential and one per remote address
// (checked before authentication, so unknown tokens and public routes count
// too); over either, 429 with the seconds until the next token in
// Retry-After. The rates are so low that no token comes back during the test.
func TestRateLimits(t *testing.T) {
	s := startServer(t, t.TempDir(), "", api.Limits{Rate: 0.01, Burst: 2, IPRate: 0.01, IPBurst: 7})
	admin := client(t, s, s.Admin)
	ctx := context.Background()
	a, err := admin.CreateToken(ctx, "reader", "a") // address: 1
	if err != nil {
		t.Fatal(err)
	}
	b, err := admin.CreateToken(ctx, "reader", "b") // address: 2
	if err != nil {
		t.Fatal(err)
	}
	get := func(c *http.Client, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	local := &http.Client{}
	steps := []struct {
		path, token string
		want        int
		why         string
	}{
		{"/v1/hosts", a, 200, "a's first (address: 3)"},
		{"/v1/hosts", a, 200, "a's second (address: 4)"},
		{"/v1/hosts", a, 429, "a's burst of 2 is spent (address: 5)"},
		{"/v1/hosts", b, 200, "b has its own bucket (address: 6)"},
		{"/healthz", "", 200, "public route (address: 7)"},
		{"/v1/hosts", b, 429, "the address's burst of 7 is spent, b's is not"},
		{"/v1/hosts", "vch_unknown", 429, "limited before authentication"},
	}
	for _, st := range steps {
		code, retry := get(local, st.path, st.token)
		if code != st.want {
			t.Fatalf("%s: %s = %d, want %d", st.why, st.path, code, st.want)
		}
		if code == http.StatusTooManyRequests {
			// 1 token at 0.01/s: about 100 s.
			if n, err := strconv.Atoi(retry); err != nil || n < 50 || n > 100 {
				t.Fatalf("%s: Retry-After %q, want about 100 seconds", st.why, retry)
			}
		}
	}
	// Another address (127.0.0.2 reaches the loopback listener) has its own
	// bucket; b's credential is still over its own.
	other := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	if code, _ := get(other, "/healthz", ""); code != 200 {
		t.Fatalf("another address: /healthz = %d", code)
	}
	if code, _ := get(other, "/v1/hosts", b); code != 200 {
		t.Fatalf("another address, b's second: %d", code)
	}
	if code, _ := get(other, "/v1/hosts", b); code != 429 {
		t.Fatalf("another address, b's third: %d, want 429 (per credential)", code)
	}
}
