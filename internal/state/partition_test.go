package state

import (
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMurmur2MatchesKgo checks Follower.Partition's hash against kgo's
// default partitioner, which the writers of the changelog use.
func TestMurmur2MatchesKgo(t *testing.T) {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		key := make([]byte, i%67)
		for j := range key {
			key[j] = byte(rng.UintN(256))
		}
		n := 1 + i%37
		want := p.Partition(&kgo.Record{Key: key}, n)
		if got := int((murmur2(key) & 0x7fffffff) % uint32(n)); got != want {
			t.Fatalf("key of %d bytes, %d partitions: got %d, want %d", len(key), n, got, want)
		}
	}
}
