// batch_internal_test.go checks that batches, walked again and again over
// keys in any order with repeats, yield every distinct key once, in order,
// never more than their size at a time.

package registry

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct{ keys, distinct, size int }{
		{0, 1, 4}, {1, 1, 4}, {7, 3, 4}, {8, 8, 4}, {9, 9, 4}, {100, 10, 4}, {1000, 1000, 7}, {5000, 300, 64},
	} {
		var walk []string
		for range tt.keys {
			walk = append(walk, string(rune('a'+rng.IntN(26)))+strings.Repeat("x", rng.IntN(tt.distinct)))
		}
		want := slices.Compact(slices.Sorted(slices.Values(walk)))
		b := newBatch(tt.size, strings.Compare)
		var got []string
		for walks := 0; ; walks++ {
			if walks > len(want)+1 {
				t.Fatalf("%d keys: no end after %d walks", tt.keys, walks)
			}
			for _, k := range walk {
				if b.want(k) {
					b.add(k)
				}
			}
			keys, last := b.done()
			if len(keys) > tt.size {
				t.Fatalf("a batch of %d keys, want at most %d", len(keys), tt.size)
			}
			got = append(got, keys...)
			if last {
				break
			}
			b.next()
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })); diff != "" {
			t.Errorf("%d keys, batches of %d: mismatch (-want +got):\n%s", tt.keys, tt.size, diff)
		}
		b.reset()
		for _, k := range walk {
			if b.want(k) {
				b.add(k)
			}
		}
		if keys, _ := b.done(); len(want) > 0 && keys[0] != want[0] {
			t.Errorf("after reset the batch starts at %q, want %q", keys[0], want[0])
		}
	}
}
