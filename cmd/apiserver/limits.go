package main

import (
	"fmt"
	"time"

	"github.com/homeroom/homeroom/pkg/apiserver"
)

// apiConfig is the apiserver's own configuration, beyond what pkg/config
// holds: rate limits, long polls, registration and the embedded artifact
// store's binary.
type apiConfig struct {
	rate                float64
	burst               int
	authFailRate        float64
	authFailBurst       int
	maxWait             time.Duration
	requireRegistration bool
	versitygw           string
}

// check refuses settings the server cannot honour together; each alone is
// checked as it is read (settings).
func (c apiConfig) check() error {
	switch {
	case c.rate > 0 && c.burst < 1:
		return fmt.Errorf("rate burst %d (HOMEROOM_RATE_BURST, -rate-burst): want at least 1 while the rate limit is on", c.burst)
	case c.authFailRate > 0 && c.authFailBurst < 1:
		return fmt.Errorf("auth failure burst %d (HOMEROOM_AUTH_FAILURE_BURST, -auth-failure-burst): want at least 1 while the auth failure limit is on", c.authFailBurst)
	}
	return nil
}

func (c apiConfig) options() []apiserver.Option {
	return []apiserver.Option{
		apiserver.WithRateLimit(c.rate, c.burst),
		apiserver.WithAuthFailureLimit(c.authFailRate, c.authFailBurst),
		apiserver.WithLongPoll(c.maxWait, apiserver.DefaultPollInterval, apiserver.DefaultWaitsPerCaller),
		apiserver.WithRegistrationRequired(c.requireRegistration),
	}
}
