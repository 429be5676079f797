package main

import (
	"io"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/config"
)

func TestAPIConfig(t *testing.T) {
	_, c, err := loadConfig(nil, config.MapLookup(nil), io.Discard)
	if err != nil || c.rate != apiserver.DefaultRate || c.burst != apiserver.DefaultBurst || c.maxWait != apiserver.DefaultMaxWait || c.requireRegistration {
		t.Fatalf("defaults: %+v %v", c, err)
	}

	env := config.MapLookup(map[string]string{
		"HOMEROOM_RATE_LIMIT": "0.5", "HOMEROOM_RATE_BURST": "3", "HOMEROOM_MAX_WAIT": "30s", "HOMEROOM_REQUIRE_REGISTRATION": "true",
	})
	_, c, err = loadConfig(nil, env, io.Discard)
	if err != nil || c.rate != 0.5 || c.burst != 3 || c.maxWait != 30*time.Second || !c.requireRegistration {
		t.Errorf("from the environment: %+v %v", c, err)
	}
	_, c, err = loadConfig([]string{"-rate-limit=0", "-max-wait=2m"}, env, io.Discard)
	if err != nil || c.rate != 0 || c.burst != 3 || c.maxWait != 2*time.Minute {
		t.Errorf("flags over the environment: %+v %v", c, err)
	}
	if len(c.options()) != 4 {
		t.Error("options")
	}

	for _, bad := range []map[string]string{
		{"HOMEROOM_RATE_LIMIT": "fast"},
		{"HOMEROOM_RATE_LIMIT": "-1"},
		{"HOMEROOM_MAX_WAIT": "60"},
		{"HOMEROOM_MAX_WAIT": "1h"},
		{"HOMEROOM_MAX_WAIT": "0s"},
		{"HOMEROOM_REQUIRE_REGISTRATION": "maybe"},
		{"HOMEROOM_RATE_BURST": "0"},
		{"HOMEROOM_AUTH_FAILURE_BURST": "0"},
	} {
		if _, c, err := loadConfig(nil, config.MapLookup(bad), io.Discard); err == nil {
			t.Errorf("%v was accepted: %+v", bad, c)
		}
	}
	// Without a limit, no burst is needed.
	if _, _, err := loadConfig(nil, config.MapLookup(map[string]string{"HOMEROOM_RATE_LIMIT": "0", "HOMEROOM_RATE_BURST": "0"}), io.Discard); err != nil {
		t.Errorf("no limit, no burst: %v", err)
	}
}
