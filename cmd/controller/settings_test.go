package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/reconcile"
)

// TestSettingsDocumented: README.md's table of settings lists exactly what
// the controller registers, with the same variables and defaults.
func TestSettingsDocumented(t *testing.T) {
	rows, err := config.ReadmeSettings("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cfg config.Config
	var o options
	for _, p := range config.CheckDocumented(rows, "controller", settings(&cfg, &o)) {
		t.Error(p)
	}
}

func TestLoadConfig(t *testing.T) {
	cfg, o, err := loadConfig(nil, config.MapLookup(nil), io.Discard)
	if err != nil || o.workers != 4 || o.parallel != reconcile.DefaultParallel || o.globalParallel != reconcile.DefaultGlobalParallel ||
		o.pprof || o.resync != 30*time.Second || o.poll != time.Second || o.changeInterval != 100*time.Millisecond ||
		o.leaseTTL != 15*time.Second || o.orphanGrace != reconcile.DefaultOrphanGrace || o.id == "" || cfg.ControllerListen != "127.0.0.1:8081" {
		t.Fatalf("defaults: %+v %+v %v", cfg, o, err)
	}
	// Each flag has a variable; given both, the flag wins.
	cfg, o, err = loadConfig([]string{"-workers=2", "-listen=127.0.0.1:9999"}, config.MapLookup(map[string]string{
		"HOMEROOM_WORKERS": "8", "HOMEROOM_RESYNC": "1m", "HOMEROOM_POLL": "250ms", "HOMEROOM_CHANGE_INTERVAL": "1s",
		"HOMEROOM_LEASE_TTL": "5s", "HOMEROOM_ID": "ctl-a", "HOMEROOM_ORPHAN_GRACE": "1h", "HOMEROOM_PPROF": "true",
		"HOMEROOM_CONTROLLER_LISTEN": "127.0.0.1:8888", "HOMEROOM_LISTEN": "0.0.0.0:8080",
	}), io.Discard)
	if err != nil || o.workers != 2 || o.resync != time.Minute || o.poll != 250*time.Millisecond || o.changeInterval != time.Second ||
		o.leaseTTL != 5*time.Second || o.id != "ctl-a" || o.orphanGrace != time.Hour || !o.pprof ||
		cfg.ControllerListen != "127.0.0.1:9999" || cfg.Listen != "0.0.0.0:8080" {
		t.Errorf("from the environment and flags: %+v %+v %v", cfg, o, err)
	}
}

// TestLoadConfigRefusesBadValues: each would have been taken before: as
// the default (a word for a number), as false (anything but "true"), or
// as given (a negative period).
func TestLoadConfigRefusesBadValues(t *testing.T) {
	for _, bad := range []struct{ env, value string }{
		{"HOMEROOM_PARALLEL", "many"},
		{"HOMEROOM_GLOBAL_PARALLEL", "0"},
		{"HOMEROOM_SUBNET_BITS", "abc"},
		{"HOMEROOM_SUBNET_BITS", "30"},
		{"HOMEROOM_PPROF", "yes"},
		{"HOMEROOM_S3_SECURE", "yes"},
		{"HOMEROOM_WORKERS", "four"},
		{"HOMEROOM_RESYNC", "-30s"},
		{"HOMEROOM_POLL", "1"},
		{"HOMEROOM_LEASE_TTL", "0s"},
		{"HOMEROOM_ORPHAN_GRACE", "-5m"},
		{"HOMEROOM_LOG_LEVEL", "verbose"},
	} {
		t.Run(bad.env+"="+bad.value, func(t *testing.T) {
			_, _, err := loadConfig(nil, config.MapLookup(map[string]string{bad.env: bad.value}), io.Discard)
			if err == nil || !strings.Contains(err.Error(), bad.env) {
				t.Errorf("%v; want an error naming %s", err, bad.env)
			}
		})
	}
	for _, args := range [][]string{{"-workers=0"}, {"-poll=-1s"}, {"-change-interval=fast"}, {"-pprof=maybe"}} {
		if _, _, err := loadConfig(args, config.MapLookup(nil), io.Discard); err == nil || !strings.Contains(err.Error(), strings.SplitN(args[0], "=", 2)[0]) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// TestBadSettingStopsStart: the binary refuses a bad value before it
// reaches for the store or Docker (before, a word for -subnet-bits was
// read as 23 and the controller went on).
func TestBadSettingStopsStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the controller")
	}
	bin := testenv.BuildBinaries(t, "controller") + "/controller"
	p := testenv.StartProcess(t, bin, []string{"HOMEROOM_SUBNET_BITS=abc", "HOMEROOM_MONGO_URI=mongodb://127.0.0.1:1", "HOMEROOM_CONTROLLER_LISTEN=" + testenv.FreeAddr(t)})
	if st := p.Wait(20 * time.Second); st.Success() {
		t.Fatal("the controller exited 0")
	}
	if out := p.Output(); !strings.Contains(out, `"abc"`) || !strings.Contains(out, "HOMEROOM_SUBNET_BITS") {
		t.Errorf("the error does not name the variable and the value:\n%s", out)
	}
}
