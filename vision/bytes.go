package vision

import (
	"fmt"
	"runtime"
	"unsafe"

	"gocv.io/x/gocv"
)

// NewMatCopy returns a Mat that owns a copy of data. gocv's NewMatFromBytes
// does not copy: its Mat points into Go memory, which cgo rules forbid C to
// keep. Clone moves the pixels into C memory.
func NewMatCopy(rows, cols int, mt gocv.MatType, data []byte) (gocv.Mat, error) {
	if rows <= 0 || cols <= 0 {
		return gocv.Mat{}, fmt.Errorf("mat of %dx%d", cols, rows)
	}
	view, err := gocv.NewMatFromBytes(rows, cols, mt, data)
	if err != nil {
		return gocv.Mat{}, err
	}
	m := view.Clone()
	view.Close()
	runtime.KeepAlive(data)
	return m, nil
}

// float32Bytes and int32Bytes view a slice as bytes without copying.
func float32Bytes(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*4)
}

func int32Bytes(s []int32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*4)
}

func float64Bytes(s []float64) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*8)
}
