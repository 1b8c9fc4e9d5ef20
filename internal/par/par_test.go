package par

import (
	"sync/atomic"
	"testing"
)

func TestEach(t *testing.T) {
	for _, workers := range []int{0, 1, 3, 50} {
		const n = 40
		var calls [n]atomic.Int32
		var last, reports int
		Each(n, workers, func(i int) { calls[i].Add(1) }, func(done, total int) {
			reports++
			if done != last+1 || total != n {
				t.Errorf("workers %d: progress %d/%d after %d", workers, done, total, last)
			}
			last = done
		})
		for i := range calls {
			if c := calls[i].Load(); c != 1 {
				t.Errorf("workers %d: job %d ran %d times", workers, i, c)
			}
		}
		if reports != n {
			t.Errorf("workers %d: %d progress reports, want %d", workers, reports, n)
		}
	}
	Each(0, 2, func(int) { t.Error("job run for n = 0") }, nil)
}
