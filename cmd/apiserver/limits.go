package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/homeroom/homeroom/pkg/apiserver"
)

// apiConfig is the apiserver's own configuration, beyond what it shares with
// the controller (pkg/config): rate limits, long polls and registration.
type apiConfig struct {
	rate                float64
	burst               int
	authFailRate        float64
	authFailBurst       int
	maxWait             time.Duration
	requireRegistration bool
}

// apiConfigFromEnv reads HOMEROOM_RATE_LIMIT, HOMEROOM_RATE_BURST,
// HOMEROOM_AUTH_FAILURE_LIMIT, HOMEROOM_AUTH_FAILURE_BURST,
// HOMEROOM_MAX_WAIT and HOMEROOM_REQUIRE_REGISTRATION, with the apiserver
// package's defaults. A value that does not parse is an error: a limit
// silently left at its default is worse than a refusal to start.
func apiConfigFromEnv() (apiConfig, error) {
	c := apiConfig{
		rate: apiserver.DefaultRate, burst: apiserver.DefaultBurst,
		authFailRate: apiserver.DefaultAuthFailureRate, authFailBurst: apiserver.DefaultAuthFailureBurst,
		maxWait: apiserver.DefaultMaxWait,
	}
	var err error
	parse := func(name string, f func(string) error) {
		if v, ok := os.LookupEnv(name); ok && v != "" && err == nil {
			if perr := f(v); perr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, perr)
			}
		}
	}
	parse("HOMEROOM_RATE_LIMIT", func(v string) (e error) { c.rate, e = strconv.ParseFloat(v, 64); return })
	parse("HOMEROOM_RATE_BURST", func(v string) (e error) { c.burst, e = strconv.Atoi(v); return })
	parse("HOMEROOM_AUTH_FAILURE_LIMIT", func(v string) (e error) { c.authFailRate, e = strconv.ParseFloat(v, 64); return })
	parse("HOMEROOM_AUTH_FAILURE_BURST", func(v string) (e error) { c.authFailBurst, e = strconv.Atoi(v); return })
	parse("HOMEROOM_MAX_WAIT", func(v string) (e error) { c.maxWait, e = time.ParseDuration(v); return })
	parse("HOMEROOM_REQUIRE_REGISTRATION", func(v string) (e error) { c.requireRegistration, e = strconv.ParseBool(v); return })
	return c, err
}

func (c *apiConfig) flags(fs *flag.FlagSet) {
	fs.Float64Var(&c.rate, "rate-limit", c.rate, "requests a second each token may make on average; 0 turns limiting off (HOMEROOM_RATE_LIMIT)")
	fs.IntVar(&c.burst, "rate-burst", c.burst, "requests a token may make at once (HOMEROOM_RATE_BURST)")
	fs.Float64Var(&c.authFailRate, "auth-failure-limit", c.authFailRate, "requests a second without a valid token from one client address (see -trusted-proxies); 0 turns it off (HOMEROOM_AUTH_FAILURE_LIMIT)")
	fs.IntVar(&c.authFailBurst, "auth-failure-burst", c.authFailBurst, "requests without a valid token one client address may make at once (HOMEROOM_AUTH_FAILURE_BURST)")
	fs.DurationVar(&c.maxWait, "max-wait", c.maxWait, "longest ?wait= of a long poll (HOMEROOM_MAX_WAIT)")
	fs.BoolVar(&c.requireRegistration, "require-registration", c.requireRegistration, "admins too write and bring Up only registered classes (HOMEROOM_REQUIRE_REGISTRATION)")
}

// check refuses settings the server cannot honour; run it after the flags
// are parsed.
func (c apiConfig) check() error {
	switch {
	case c.rate < 0 || c.authFailRate < 0:
		return fmt.Errorf("rate limits must not be negative")
	case c.rate > 0 && c.burst < 1, c.authFailRate > 0 && c.authFailBurst < 1:
		return fmt.Errorf("a burst must be at least 1")
	case c.maxWait < time.Second || c.maxWait > 10*time.Minute:
		return fmt.Errorf("max wait %v must be between 1s and 10m (the server's write timeout)", c.maxWait)
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
