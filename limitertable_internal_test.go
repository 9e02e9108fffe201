// limitertable_internal_test.go checks that the rate limiter's table stays
// bounded under a flood of distinct client addresses: two generations of
// at most maxLimiters keys each (an IPv6 address adds its /64's key too),
// whatever the flood's size or mix, and that a flood forgets no bucket of
// a client still being limited within the current generation.

package registry

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiterTableBounded(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceOn {
		n = 300_000 // still more than the two generations hold
	}
	tests := []struct {
		name string
		addr func(i int) netip.Addr
	}{
		{"IPv4", func(i int) netip.Addr {
			return netip.AddrFrom4([4]byte{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		}},
		{"IPv6, one /64 each", func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 4: byte(i >> 24), 5: byte(i >> 16), 6: byte(i >> 8), 7: byte(i), 15: 1})
		}},
		{"IPv6, all in one /64", func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if raceOn && tt.name != "IPv6, one /64 each" {
				t.Skip("-race: the IPv6 case, two keys a request, covers the bound")
			}
			now := time.Unix(1_700_000_000, 0)
			// A large prefix factor, so that one /64 does not stop the flood
			// before the table fills.
			l := newLimiter(60, 120, 1_000_000, func() time.Time { return now })
			peak := 0
			for i := range n {
				l.allow(tt.addr(i), route(i%int(numRoutes)))
				if i%1000 == 0 {
					peak = max(peak, l.size())
				}
			}
			peak = max(peak, l.size())
			// Each generation rotates before it holds maxLimiters keys, and
			// one request adds at most two (an address and its /64).
			if limit := 2 * (maxLimiters + 1); peak > limit {
				t.Errorf("%d distinct addresses: the table held %d keys, want at most %d", n, peak, limit)
			}
			t.Logf("%d distinct addresses: at most %d keys", n, peak)
		})
	}

	t.Run("a limited client stays limited through a flood", func(t *testing.T) {
		now := time.Unix(1_700_000_000, 0)
		l := newLimiter(2, 2, 0, func() time.Time { return now })
		client := netip.MustParseAddr("192.0.2.7")
		for range 2 {
			if _, ok := l.allow(client, routeRegister); !ok {
				t.Fatal("the first two requests were refused")
			}
		}
		// Fewer keys than a generation: the client's bucket stays.
		for i := range maxLimiters / 2 {
			l.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), routeRegister)
		}
		if _, ok := l.allow(client, routeRegister); ok {
			t.Error("the client's third request passed: a flood smaller than a generation reset its bucket")
		}
	})
}
