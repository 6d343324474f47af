package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/api"
)

// TestThrottledEnrolment: every simulated host enrols with one token, so a
// real server's per-credential rate limit answers 429; throttled waits what
// Retry-After says and every host gets enrolled (make demo's simulated fleet
// once stopped at the first 429).
func TestThrottledEnrolment(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- api.Serve(ctx, api.ServeOptions{Listen: "127.0.0.1:0", DataDir: t.TempDir(),
			Limits: api.Limits{Rate: 2, Burst: 2, IPRate: 1000, IPBurst: 1000},
			Ready:  func(addr, tok string) { ready <- [2]string{addr, tok} }})
	}()
	var addr, tokFile string
	select {
	case r := <-ready:
		addr, tokFile = r[0], r[1]
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	defer func() { cancel(); <-done }()
	b, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := api.NewClient(addr, strings.TrimSpace(string(b)), "")
	enroll, err := admin.CreateToken(ctx, "enroll", "")
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := api.NewClient(addr, enroll, "")
	calls, limited := 0, 0
	for i := range 6 {
		err := throttled(ctx, func() error {
			calls++
			_, err := ec.Enroll(ctx, fmt.Sprintf("sim-%d", i))
			var se *api.StatusError
			if errors.As(err, &se) && se.Code == http.StatusTooManyRequests {
				limited++
				if se.RetryAfter <= 0 {
					t.Errorf("429 without a Retry-After: %v", se)
				}
			}
			return err
		})
		if err != nil {
			t.Fatalf("host %d: %v", i, err)
		}
	}
	if limited == 0 || calls != 6+limited {
		t.Errorf("%d calls, %d answered 429: want the limit hit and every 429 retried", calls, limited)
	}
	t.Logf("6 hosts enrolled in %d calls (%d answered 429)", calls, limited)
}
