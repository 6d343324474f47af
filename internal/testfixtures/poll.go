package testfixtures

import "time"

// Eventually calls cond every interval until it returns true (Eventually
// then returns true) or until timeout has passed (false): the way tests wait
// for something to happen, instead of sleeping for a guessed time. cond runs
// on the caller's goroutine, so it may call t.Fatal.
func Eventually(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
}
