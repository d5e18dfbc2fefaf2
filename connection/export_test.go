package connection

import "time"

// SetRetryLogEvery sets how often a failing link is logged again, for a
// test, and returns a func that restores it.
func SetRetryLogEvery(d time.Duration) func() {
	old := retryLogEvery
	retryLogEvery = d
	return func() { retryLogEvery = old }
}
