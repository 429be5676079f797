package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The profiler shows goroutines and heap contents: it is served only when
// -pprof asks for it.
func TestPprofOnlyWhenAsked(t *testing.T) {
	ready := map[string]func(context.Context) error{"store": func(context.Context) error { return nil }}
	for _, tc := range []struct {
		desc    string
		enabled bool
		want    int
	}{
		{desc: "absent by default", enabled: false, want: http.StatusNotFound},
		{desc: "present with -pprof", enabled: true, want: http.StatusOK},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			srv := httptest.NewServer(newMux(prometheus.NewRegistry(), ready, tc.enabled))
			defer srv.Close()
			want := map[string]int{
				"/debug/pprof/": tc.want, "/debug/pprof/goroutine?debug=1": tc.want, "/debug/pprof/cmdline": tc.want,
				"/metrics": http.StatusOK, "/healthz": http.StatusOK, "/readyz": http.StatusOK,
			}
			for path, code := range want {
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != code {
					t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, code)
				}
			}
		})
	}
}
