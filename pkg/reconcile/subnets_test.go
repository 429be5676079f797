package reconcile

import (
	"net/netip"
	"testing"
)

func TestPickSubnet(t *testing.T) {
	pool := netip.MustParsePrefix("10.200.0.0/15")
	p := netip.MustParsePrefix
	tests := []struct {
		desc string
		bits int
		used []netip.Prefix
		want string // "" for none
	}{
		{"empty daemon: the first", 23, nil, "10.200.0.0/23"},
		{"docker's own networks elsewhere are ignored", 23, []netip.Prefix{p("172.17.0.0/16"), p("192.168.0.0/20")}, "10.200.0.0/23"},
		{"skips a taken subnet", 23, []netip.Prefix{p("10.200.0.0/23")}, "10.200.2.0/23"},
		{"skips a smaller network inside a candidate", 23, []netip.Prefix{p("10.200.1.128/25")}, "10.200.2.0/23"},
		{"skips a larger network covering candidates", 23, []netip.Prefix{p("10.200.0.0/22")}, "10.200.4.0/23"},
		{"the second half of the pool", 23, []netip.Prefix{p("10.200.0.0/16")}, "10.201.0.0/23"},
		{"exhausted", 23, []netip.Prefix{p("10.0.0.0/8")}, ""},
		{"a size larger than the pool", 14, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, ok := pickSubnet(pool, tc.bits, tc.used)
			if tc.want == "" {
				if ok {
					t.Fatalf("got %s, want none", got)
				}
				return
			}
			if !ok || got.String() != tc.want {
				t.Fatalf("got %s (%v), want %s", got, ok, tc.want)
			}
		})
	}
}
