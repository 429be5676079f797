package reconcile

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"go.uber.org/zap"
)

// Class networks take subnets from Homeroom's own pool: Docker's default
// pools allow only about 31 local networks, far fewer than a school's
// classes. A /23 holds the largest roster (500) plus Traefik.
var (
	DefaultSubnetPool = netip.MustParsePrefix("10.200.0.0/15")
	DefaultSubnetBits = 23
)

// subnetAttempts bounds how many subnets one pass tries when the daemon
// refuses them as taken, so that a crowded address space is reported
// instead of looped on.
const subnetAttempts = 8

// pickSubnet returns the first subnet of size bits in pool that overlaps
// none of used.
func pickSubnet(pool netip.Prefix, bits int, used []netip.Prefix) (netip.Prefix, bool) {
	if bits < pool.Bits() || bits > 30 || !pool.Addr().Is4() {
		return netip.Prefix{}, false
	}
	step := uint32(1) << (32 - bits)
	count := uint32(1) << (bits - pool.Bits())
	base := pool.Masked().Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
next:
	for i := uint32(0); i < count; i++ {
		a := start + i*step
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), bits)
		for _, u := range used {
			if u.Overlaps(cand) {
				continue next
			}
		}
		return cand, true
	}
	return netip.Prefix{}, false
}

// createNetwork makes the class network on a free subnet of the pool. One
// allocation at a time: two classes created at once must not pick the same.
func (r *Reconciler) createNetwork(ctx context.Context, classID, name string, t *policy.Template) (string, error) {
	r.subnetMu.Lock()
	defer r.subnetMu.Unlock()
	used, err := r.docker.UsedSubnets(ctx)
	if err != nil {
		return "", err
	}
	for attempt := 0; attempt < subnetAttempts; attempt++ {
		sub, ok := pickSubnet(r.opts.SubnetPool, r.opts.SubnetBits, used)
		if !ok {
			return "", fmt.Errorf("subnet pool %s has no free /%d left: bring a class Down or widen HOMEROOM_SUBNET_POOL", r.opts.SubnetPool, r.opts.SubnetBits)
		}
		id, err := r.docker.EnsureNetwork(ctx, name, NetworkCreateOptions(classID, t, sub))
		if err == nil {
			return id, nil
		}
		if !dockerx.IsSubnetTaken(err) {
			return "", err
		}
		// Taken by something the list did not show (a network made since,
		// or another address space): remember it and try the next one.
		r.log.Info("subnet taken; trying the next", zap.String("classId", classID), zap.Stringer("subnet", sub), zap.Error(err))
		used = append(used, sub)
	}
	return "", fmt.Errorf("no free subnet for %s after %d refused attempts", api.NetworkName(classID), subnetAttempts)
}
