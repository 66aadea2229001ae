package pan
import ("testing";"os")
func BenchmarkDbgFind(b *testing.B) {
	data, _ := os.ReadFile("/tmp/corpus.txt")
	d := New()
	b.SetBytes(int64(len(data)))
	for b.Loop() { d.Find(nil, data) }
}
