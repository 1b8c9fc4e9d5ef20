// Package par runs independent jobs on a fixed number of goroutines.
package par

import "sync"

// Each calls do(i) for every i in [0, n) on workers goroutines (at least
// one) and, when progress is not nil, progress(done, n) after each call,
// one call at a time. It returns when every call has returned. do must be
// safe to run concurrently for different i.
func Each(n, workers int, do func(i int), progress func(done, total int)) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				do(i)
				if progress != nil {
					mu.Lock()
					done++
					progress(done, n)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}
