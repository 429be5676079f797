package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/config"
)

// TestSettingsDocumented: README.md's table of settings lists exactly what
// the apiserver registers, with the same variables and defaults.
func TestSettingsDocumented(t *testing.T) {
	rows, err := config.ReadmeSettings("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cfg config.Config
	var acfg apiConfig
	for _, p := range config.CheckDocumented(rows, "apiserver", settings(&cfg, &acfg)) {
		t.Error(p)
	}
}

// TestLoadConfigRefusesBadValues: values the apiserver took before, as
// false (anything but "true") or as given, and the controller's own flags.
func TestLoadConfigRefusesBadValues(t *testing.T) {
	for _, bad := range []struct{ env, value string }{
		{"HOMEROOM_S3_SECURE", "yes"},
		{"HOMEROOM_LOG_FORMAT", "text"},
		{"HOMEROOM_LOG_LEVEL", "verbose"},
		{"HOMEROOM_TRUSTED_PROXIES", "proxy.example"},
		{"HOMEROOM_AUTH_FAILURE_LIMIT", "-5"},
	} {
		_, _, err := loadConfig(nil, config.MapLookup(map[string]string{bad.env: bad.value}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), bad.env) || !strings.Contains(err.Error(), `"`+bad.value+`"`) {
			t.Errorf("%s=%s: %v; want an error naming both", bad.env, bad.value, err)
		}
	}
	for _, args := range [][]string{{"-workers=2"}, {"-subnet-bits=24"}, {"-s3-secure=yes"}, {"-max-wait=-1s"}} {
		if _, _, err := loadConfig(args, config.MapLookup(nil), io.Discard); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
}

// TestBadSettingStopsStart: the binary refuses a bad value before it makes
// anything (before, HOMEROOM_S3_SECURE=yes was read as false and the
// apiserver went on).
func TestBadSettingStopsStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the apiserver")
	}
	bin := filepath.Join(testenv.BuildBinaries(t, "apiserver"), "apiserver")
	data := filepath.Join(t.TempDir(), "data")
	p := testenv.StartProcess(t, bin, []string{
		"HOMEROOM_S3_SECURE=yes", "HOMEROOM_DATA_DIR=" + data, "HOMEROOM_LISTEN=" + testenv.FreeAddr(t),
		"HOMEROOM_EMBEDDED_S3_ADDR=" + testenv.FreeAddr(t), "HOMEROOM_MONGO_URI=mongodb://127.0.0.1:1", "HOMEROOM_S3_ENDPOINT=127.0.0.1:1",
	})
	if st := p.Wait(20 * time.Second); st.Success() {
		t.Fatal("the apiserver exited 0")
	}
	if out := p.Output(); !strings.Contains(out, `"yes"`) || !strings.Contains(out, "HOMEROOM_S3_SECURE") {
		t.Errorf("the error does not name the variable and the value:\n%s", out)
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("the data dir was made before the settings were checked")
	}
}
