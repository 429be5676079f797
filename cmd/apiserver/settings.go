package main

import (
	"io"
	"time"

	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/config"
)

func (c *apiConfig) settings() []config.Setting {
	return []config.Setting{
		{Flag: "rate-limit", Env: "HOMEROOM_RATE_LIMIT", Help: "requests a second each token may make on average; 0 turns limiting off", Value: config.Float(&c.rate, apiserver.DefaultRate, 0)},
		{Flag: "rate-burst", Env: "HOMEROOM_RATE_BURST", Help: "requests a token may make at once", Value: config.Int(&c.burst, apiserver.DefaultBurst, 0)},
		{Flag: "auth-failure-limit", Env: "HOMEROOM_AUTH_FAILURE_LIMIT", Help: "requests a second without a valid token from one client address (see -trusted-proxies); 0 turns it off", Value: config.Float(&c.authFailRate, apiserver.DefaultAuthFailureRate, 0)},
		{Flag: "auth-failure-burst", Env: "HOMEROOM_AUTH_FAILURE_BURST", Help: "requests without a valid token one client address may make at once", Value: config.Int(&c.authFailBurst, apiserver.DefaultAuthFailureBurst, 0)},
		// Longer than the server's write timeout, a long poll would be cut.
		{Flag: "max-wait", Env: "HOMEROOM_MAX_WAIT", Help: "longest ?wait= of a long poll", Value: config.Duration(&c.maxWait, apiserver.DefaultMaxWait, time.Second, 10*time.Minute)},
		{Flag: "require-registration", Env: "HOMEROOM_REQUIRE_REGISTRATION", Help: "admins too write and bring Up only registered classes", Value: config.Bool(&c.requireRegistration, false)},
		{Flag: "versitygw", Env: "HOMEROOM_VERSITYGW", Help: "the versitygw binary run as the embedded artifact store; empty: next to the apiserver, in $HOMEROOM_CACHE (default /var/cache/homeroom), then on PATH", Value: config.String(&c.versitygw, "")},
	}
}

// settings are every setting the apiserver takes, bound to cfg and acfg.
func settings(cfg *config.Config, acfg *apiConfig) []config.Setting {
	return append(cfg.Settings(config.Apiserver), acfg.settings()...)
}

// loadConfig reads the apiserver's settings from the environment (lookup)
// and args, refusing any that does not parse or cannot work together.
func loadConfig(args []string, lookup func(string) (string, bool), usage io.Writer) (config.Config, apiConfig, error) {
	var cfg config.Config
	var acfg apiConfig
	if err := cfg.Load(config.Apiserver, acfg.settings(), args, lookup, usage); err != nil {
		return cfg, acfg, err
	}
	return cfg, acfg, acfg.check()
}
