package vision

import (
	"fmt"
	"runtime"
	"sync"

	"gocv.io/x/gocv"

	"allscreen/internal/par"
)

// SegmentResult is SegmentCellWith on one labelled image, scored against
// its ground truth when there is one.
type SegmentResult struct {
	Name, Label string
	Masks       *CellMasks
	HasTruth    bool
	Nucleus     Scores // our nucleus against the truth's nucleus (255)
	Cell        Scores // our whole cell against the truth's cell (128 or 255)
	// Oracle is the paper's ground-truth choice: of the k=3 RGB k-means
	// clusters (Algorithm 1 at k=3), the one with the best mean of SSIM,
	// Dice and IoU against the truth's nucleus.
	Oracle Scores
	Err    error
}

// EvaluateOptions configures EvaluateSegmentation.
type EvaluateOptions struct {
	Segment SegmentOptions
	Oracle  bool // also run the paper's ground-truth choice (needs masks)
	Workers int  // 0: one per CPU
	// Progress, when set, is called after each image with the number done,
	// from one goroutine at a time.
	Progress func(done, total int)
	// Keep, when set, is called with each image and its result (from one
	// goroutine at a time), e.g. to draw an overlay; the image is closed
	// after it returns.
	Keep func(img gocv.Mat, r *SegmentResult)
}

// EvaluateSegmentation segments every image of set. An image that cannot
// be read or segmented carries its error; the others are still done.
func EvaluateSegmentation(set []LabeledImage, opt EvaluateOptions) []SegmentResult {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	out := make([]SegmentResult, len(set))
	var mu sync.Mutex
	par.Each(len(set), workers, func(i int) { out[i] = evaluateOne(set[i], opt, &mu) }, opt.Progress)
	return out
}

func evaluateOne(li LabeledImage, opt EvaluateOptions, mu *sync.Mutex) SegmentResult {
	r := SegmentResult{Name: li.Name, Label: li.Label}
	img, err := LoadImage(li.Image)
	if err != nil {
		r.Err = err
		return r
	}
	defer img.Close()
	if r.Masks, err = SegmentCellWith(img, opt.Segment); err != nil {
		r.Err = fmt.Errorf("%s: %w", li.Image, err)
		return r
	}
	if opt.Keep != nil {
		defer func() {
			mu.Lock()
			opt.Keep(img, &r)
			mu.Unlock()
		}()
	}
	if li.Mask == "" {
		return r
	}
	g, err := LoadTruth(li.Mask)
	if err != nil {
		r.Err = err
		return r
	}
	if g.Rect.Dx() != img.Cols() || g.Rect.Dy() != img.Rows() {
		r.Err = fmt.Errorf("%s: mask is %dx%d but the image is %dx%d", li.Mask, g.Rect.Dx(), g.Rect.Dy(), img.Cols(), img.Rows())
		return r
	}
	nucTruth, err := NewTruth(TruthMask(g, TargetNucleus))
	if err == nil {
		r.Nucleus, err = nucTruth.Score(r.Masks.Nucleus)
	}
	if err == nil {
		var cellTruth *Truth
		if cellTruth, err = NewTruth(TruthMask(g, TargetCell)); err == nil {
			r.Cell, err = cellTruth.Score(r.Masks.Cell)
		}
	}
	if err == nil && opt.Oracle {
		var best []Scores
		best, _, err = TuneImage(img, nucTruth, TuneOptions{Ks: []int{3}, Space: SpaceBGR, Seed: opt.Segment.Seed, Attempts: DefaultTuneAttempts})
		if err == nil {
			r.Oracle = best[0]
		}
	}
	if err != nil {
		r.Err = fmt.Errorf("%s: %w", li.Name, err)
		return r
	}
	r.HasTruth = true
	return r
}
