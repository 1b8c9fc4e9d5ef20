package main

// The frames, crops and OpenCV's working buffers live in C memory, from
// glibc's malloc. By default glibc raises its mmap threshold to the size of
// the largest block freed (up to 32 MB): after the first 5 MP frame (15 MB)
// is freed, every later frame comes from a malloc arena instead of its own
// mapping, and freed arena memory mostly stays in the process. With cgo
// calls landing on several OS threads, each with its own arena, the daemon
// kept 60-100 MB of freed frames resident (peak RSS 232-238 MB over ten
// fields, against about 150 MB with the settings below). A fixed 1 MB
// threshold gives each frame-sized block its own mapping, returned to the
// system when it is freed; two arenas bound the per-thread copies of the
// smaller leftovers.

// #include <malloc.h>
import "C"

const (
	mallocMmapThreshold = 1 << 20
	mallocArenas        = 2
)

// tuneMalloc applies the settings; it returns false if glibc refused one.
func tuneMalloc() bool {
	ok := C.mallopt(C.M_MMAP_THRESHOLD, mallocMmapThreshold) == 1
	return C.mallopt(C.M_ARENA_MAX, mallocArenas) == 1 && ok
}
