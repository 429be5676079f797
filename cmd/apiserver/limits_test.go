package main

import (
	"flag"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/apiserver"
)

func TestAPIConfig(t *testing.T) {
	c, err := apiConfigFromEnv()
	if err != nil || c.rate != apiserver.DefaultRate || c.burst != apiserver.DefaultBurst || c.maxWait != apiserver.DefaultMaxWait || c.requireRegistration || c.check() != nil {
		t.Fatalf("defaults: %+v %v", c, err)
	}

	t.Setenv("HOMEROOM_RATE_LIMIT", "0.5")
	t.Setenv("HOMEROOM_RATE_BURST", "3")
	t.Setenv("HOMEROOM_MAX_WAIT", "30s")
	t.Setenv("HOMEROOM_REQUIRE_REGISTRATION", "true")
	c, err = apiConfigFromEnv()
	if err != nil || c.rate != 0.5 || c.burst != 3 || c.maxWait != 30*time.Second || !c.requireRegistration {
		t.Errorf("from the environment: %+v %v", c, err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.flags(fs)
	if err := fs.Parse([]string{"-rate-limit=0", "-max-wait=2m"}); err != nil || c.rate != 0 || c.maxWait != 2*time.Minute || c.check() != nil {
		t.Errorf("flags over the environment: %+v %v", c, err)
	}
	if len(c.options()) != 4 {
		t.Error("options")
	}

	for k, v := range map[string]string{"HOMEROOM_RATE_LIMIT": "fast", "HOMEROOM_MAX_WAIT": "60", "HOMEROOM_REQUIRE_REGISTRATION": "maybe"} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, v)
			if _, err := apiConfigFromEnv(); err == nil {
				t.Errorf("%s=%s was accepted", k, v)
			}
		})
	}
	for _, bad := range []apiConfig{
		{rate: -1, burst: 1, maxWait: time.Minute},
		{rate: 1, burst: 0, maxWait: time.Minute},
		{rate: 1, burst: 1, maxWait: time.Hour},
		{rate: 1, burst: 1, maxWait: 0},
	} {
		if bad.check() == nil {
			t.Errorf("%+v passed the check", bad)
		}
	}
}
