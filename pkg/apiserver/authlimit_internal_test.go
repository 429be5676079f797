package apiserver

import (
	"net"
	"net/http"
	"testing"
)

func TestClientIP(t *testing.T) {
	cidrs := func(s ...string) []*net.IPNet {
		var nets []*net.IPNet
		for _, c := range s {
			_, n, err := net.ParseCIDR(c)
			if err != nil {
				t.Fatal(err)
			}
			nets = append(nets, n)
		}
		return nets
	}
	proxy := cidrs("10.0.0.5/32")
	chain := cidrs("10.0.0.0/24", "::1/128")
	for _, tc := range []struct {
		name    string
		trusted []*net.IPNet
		peer    string
		xff     []string
		realIP  string
		want    string
	}{
		{"no proxies: the peer", nil, "192.0.2.10:4000", nil, "", "192.0.2.10"},
		{"no proxies: X-Forwarded-For ignored", nil, "192.0.2.10:4000", []string{"203.0.113.1"}, "", "192.0.2.10"},
		{"no proxies: X-Real-IP ignored", nil, "192.0.2.10:4000", nil, "203.0.113.1", "192.0.2.10"},
		{"no proxies: a loopback peer's header ignored", nil, "127.0.0.1:4000", []string{"203.0.113.1"}, "", "127.0.0.1"},
		{"no proxies: IPv6", nil, "[2001:db8::7]:4000", []string{"203.0.113.1"}, "", "2001:db8::7"},

		{"trusted proxy: its client", proxy, "10.0.0.5:4000", []string{"203.0.113.1"}, "", "203.0.113.1"},
		{"trusted proxy: without the header, itself", proxy, "10.0.0.5:4000", nil, "", "10.0.0.5"},
		{"trusted proxy: X-Real-IP ignored", proxy, "10.0.0.5:4000", nil, "203.0.113.1", "10.0.0.5"},
		{"trusted proxy: what the client prepended ignored", proxy, "10.0.0.5:4000", []string{"198.51.100.1, 203.0.113.1"}, "", "203.0.113.1"},
		{"trusted proxy: several header lines", proxy, "10.0.0.5:4000", []string{"198.51.100.1", "203.0.113.1"}, "", "203.0.113.1"},
		{"trusted proxy: a client on a private network", proxy, "10.0.0.5:4000", []string{"10.0.0.77"}, "", "10.0.0.77"},
		{"trusted proxy: a client claiming a private address", proxy, "10.0.0.5:4000", []string{"192.168.1.1, 203.0.113.1"}, "", "203.0.113.1"},
		{"another private peer is not trusted", proxy, "10.0.0.6:4000", []string{"203.0.113.1"}, "", "10.0.0.6"},
		{"a loopback peer is not trusted unless listed", proxy, "127.0.0.1:4000", []string{"203.0.113.1"}, "", "127.0.0.1"},
		{"a link-local peer is not trusted unless listed", proxy, "169.254.1.1:4000", []string{"203.0.113.1"}, "", "169.254.1.1"},

		{"chained proxies", chain, "10.0.0.5:4000", []string{"198.51.100.1, 203.0.113.1, 10.0.0.9"}, "", "203.0.113.1"},
		{"IPv6 proxy", chain, "[::1]:4000", []string{"2001:db8::1"}, "", "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "/api/v1/classes", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.realIP != "" {
				r.Header.Set("X-Real-IP", tc.realIP)
			}
			if got := clientIP(tc.trusted)(r); got != tc.want {
				t.Errorf("client %q, want %q", got, tc.want)
			}
		})
	}
}
