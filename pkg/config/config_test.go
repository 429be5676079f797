package config

import (
	"io"
	"os"
	"strings"
	"testing"
)

func TestParseTrustedProxies(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "",
		"  ":                         "",
		"127.0.0.1":                  "127.0.0.1/32",
		"::1":                        "::1/128",
		"10.0.0.0/8":                 "10.0.0.0/8",
		"10.1.2.3/8":                 "10.0.0.0/8",
		" 127.0.0.1 , 172.16.0.0/12": "127.0.0.1/32 172.16.0.0/12",
		"fd00::/8,192.0.2.7":         "fd00::/8 192.0.2.7/32",
		"::ffff:192.0.2.7":           "192.0.2.7/32",
	} {
		nets, err := ParseTrustedProxies(in)
		var got []string
		for _, n := range nets {
			got = append(got, n.String())
		}
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("%q: %v %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"proxy.example", "10.0.0.0/33", "10.0.0.1,", ",10.0.0.1", "10.0.0.1,,10.0.0.2",
		"10.0.0.1 10.0.0.2", "10.0.0.256", "fe80::1%eth0", "10.0.0.0/", "/8", "*"} {
		if nets, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q was accepted: %v", bad, nets)
		}
	}
}

func TestTrustedProxiesFromEnv(t *testing.T) {
	t.Setenv("HOMEROOM_TRUSTED_PROXIES", "")
	c := fromEnv(t)
	if nets, err := c.TrustedProxyNets(); c.TrustedProxies != "" || nets != nil || err != nil {
		t.Errorf("default: %q %v %v", c.TrustedProxies, nets, err)
	}
	t.Setenv("HOMEROOM_TRUSTED_PROXIES", "10.0.0.0/8,::1")
	c = fromEnv(t)
	if nets, err := c.TrustedProxyNets(); err != nil || len(nets) != 2 {
		t.Errorf("%q: %v %v", c.TrustedProxies, nets, err)
	}
	t.Setenv("HOMEROOM_TRUSTED_PROXIES", "10.0.0.0/8,proxy")
	err := c.Load(Apiserver, nil, nil, os.LookupEnv, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HOMEROOM_TRUSTED_PROXIES") || !strings.Contains(err.Error(), `"proxy"`) {
		t.Errorf("a bad entry: %v", err)
	}
}
