package vision

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"

	"gocv.io/x/gocv"

	"allscreen/internal/par"
)

// Algorithm 1 of the paper (k tuning), literally: blur 5x5 with sigma 0,
// k-means on the pixel colours of the whole image for each k, every cluster
// a candidate mask, each scored against the ground truth by SSIM, Dice and
// IoU; per image and k the cluster with the best average score (the mean of
// the three) is kept; those are averaged per class, and the k with the
// highest class mean is the class's best k.

// TuneOptions configures TuneK.
type TuneOptions struct {
	Ks     []int  // the k values tried, 2..16 each
	Target Target // what the ground truth is read as
	Space  Space  // colour space clustered in (the paper: RGB)
	Seed   uint64 // k-means seed
	// Attempts is k-means starts per image and k (see KMeansOptions); 0
	// means DefaultTuneAttempts.
	Attempts int
	// Workers is how many images are processed at once; 0 means one per CPU.
	Workers int
	// Progress, when set, is called after each image with the number done;
	// calls come from one goroutine at a time.
	Progress func(done, total int)
}

// DefaultTuneAttempts makes Algorithm 1's outcome depend little on the
// seed: with one start, class means moved by up to 0.05 between seeds.
const DefaultTuneAttempts = 8

// DefaultKs are the paper's k values.
var DefaultKs = []int{2, 3, 4, 5, 6}

// ImageTune is Algorithm 1's outcome on one image.
type ImageTune struct {
	Name, Label string
	Best        []Scores // per k (aligned with TuneOptions.Ks): the best cluster's scores
	Cluster     []int    // per k: that cluster's index
	Err         error    // why the image could not be scored; Best is nil then
}

// ClassTune is the mean, over a class's images, of the best scores per k.
type ClassTune struct {
	N    int
	Mean []Scores // per k: mean SSIM, mean Dice, mean IoU (Mean() of it is the mean average score)
}

// BestK is the index into Ks of the highest mean average score; ties go to
// the smaller k.
func (c *ClassTune) BestK() int {
	best := 0
	for i, s := range c.Mean {
		if s.Mean() > c.Mean[best].Mean() {
			best = i
		}
	}
	return best
}

// TuneResult is Algorithm 1 over a data set.
type TuneResult struct {
	Ks       []int
	Target   Target
	Space    Space
	Classes  []string              // sorted
	PerClass map[string]*ClassTune // by label
	Overall  *ClassTune            // all scored images together
	Images   []ImageTune           // in the order of the input set
	Failed   int                   // images that could not be scored
}

// TuneK runs Algorithm 1 over every image of set, which must have masks.
// An image that cannot be read or scored is recorded in Images with its
// error and left out of the means; the rest still count.
func TuneK(set []LabeledImage, opt TuneOptions) (*TuneResult, error) {
	if len(opt.Ks) == 0 {
		opt.Ks = DefaultKs
	}
	for _, k := range opt.Ks {
		if k < 2 || k > 16 {
			return nil, fmt.Errorf("tune-k: k=%d, want 2..16", k)
		}
	}
	for _, li := range set {
		if li.Mask == "" {
			return nil, fmt.Errorf("tune-k: %s has no ground-truth mask", li.Name)
		}
	}
	if opt.Attempts <= 0 {
		opt.Attempts = DefaultTuneAttempts
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	res := &TuneResult{Ks: slices.Clone(opt.Ks), Target: opt.Target, Space: opt.Space,
		Classes: Classes(set), Images: make([]ImageTune, len(set))}

	par.Each(len(set), workers, func(i int) {
		li := set[i]
		it := ImageTune{Name: li.Name, Label: li.Label}
		it.Best, it.Cluster, it.Err = tuneFile(li, opt)
		res.Images[i] = it
	}, opt.Progress)

	res.PerClass = map[string]*ClassTune{}
	for _, c := range res.Classes {
		res.PerClass[c] = &ClassTune{Mean: make([]Scores, len(opt.Ks))}
	}
	res.Overall = &ClassTune{Mean: make([]Scores, len(opt.Ks))}
	for _, it := range res.Images {
		if it.Err != nil {
			res.Failed++
			continue
		}
		for _, ct := range []*ClassTune{res.PerClass[it.Label], res.Overall} {
			ct.N++
			for j, s := range it.Best {
				ct.Mean[j].SSIM += s.SSIM
				ct.Mean[j].Dice += s.Dice
				ct.Mean[j].IoU += s.IoU
			}
		}
	}
	for _, ct := range append([]*ClassTune{res.Overall}, mapValues(res.PerClass)...) {
		for j := range ct.Mean {
			if ct.N > 0 {
				n := float64(ct.N)
				ct.Mean[j] = Scores{SSIM: ct.Mean[j].SSIM / n, Dice: ct.Mean[j].Dice / n, IoU: ct.Mean[j].IoU / n}
			}
		}
	}
	return res, nil
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func tuneFile(li LabeledImage, opt TuneOptions) ([]Scores, []int, error) {
	img, err := LoadImage(li.Image)
	if err != nil {
		return nil, nil, err
	}
	defer img.Close()
	g, err := LoadTruth(li.Mask)
	if err != nil {
		return nil, nil, err
	}
	if g.Rect.Dx() != img.Cols() || g.Rect.Dy() != img.Rows() {
		return nil, nil, fmt.Errorf("%s: mask is %dx%d but the image is %dx%d", li.Mask, g.Rect.Dx(), g.Rect.Dy(), img.Cols(), img.Rows())
	}
	truth, err := NewTruth(TruthMask(g, opt.Target))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", li.Mask, err)
	}
	best, cluster, err := TuneImage(img, truth, opt)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", li.Image, err)
	}
	return best, cluster, nil
}

// TuneImage runs Algorithm 1 on one 8-bit BGR image: for each k of opt.Ks,
// the scores of the best-scoring cluster and its index.
func TuneImage(img gocv.Mat, truth *Truth, opt TuneOptions) ([]Scores, []int, error) {
	if err := checkBGR(img); err != nil {
		return nil, nil, err
	}
	if img.Cols() != truth.mask.W || img.Rows() != truth.mask.H {
		return nil, nil, fmt.Errorf("image is %dx%d, ground truth %dx%d", img.Cols(), img.Rows(), truth.mask.W, truth.mask.H)
	}
	blurred := Blur(img)
	defer blurred.Close()
	// The paper clusters every pixel: no downscaled sample.
	ps, err := newPixelSet(blurred, opt.Space, img.Cols()*img.Rows(), nil)
	if err != nil {
		return nil, nil, err
	}
	best := make([]Scores, len(opt.Ks))
	which := make([]int, len(opt.Ks))
	mask := NewMask(img.Cols(), img.Rows())
	for j, k := range opt.Ks {
		cl, err := ps.cluster(k, opt.Seed, opt.Attempts, false)
		if err != nil {
			return nil, nil, err
		}
		// Dice and IoU of every cluster from one pass over the labels.
		inter := make([]int, k)
		for p, l := range cl.Labels {
			if truth.mask.Pix[p] != 0 {
				inter[l]++
			}
		}
		cands := make([]Scores, k)
		order := make([]int, 0, k)
		for i := range k {
			if cl.Counts[i] > 0 {
				cands[i] = diceIoU(inter[i], cl.Counts[i], truth.area)
				order = append(order, i)
			}
		}
		// SSIM is at most 1, so a cluster whose (1+Dice+IoU)/3 cannot beat
		// the best mean so far cannot win: its SSIM is not needed. Taking
		// the likeliest winners first makes that the common case. The
		// winner, and its scores, are exactly those of scoring every
		// cluster fully.
		slices.SortStableFunc(order, func(a, b int) int {
			return cmp.Compare(cands[b].Dice+cands[b].IoU, cands[a].Dice+cands[a].IoU)
		})
		which[j] = -1
		for _, i := range order {
			c := cands[i]
			if bound := (1 + c.Dice + c.IoU) / 3; which[j] >= 0 && (bound < best[j].Mean() || bound == best[j].Mean() && i > which[j]) {
				continue
			}
			for p, l := range cl.Labels {
				mask.Pix[p] = 0
				if int(l) == i {
					mask.Pix[p] = 255
				}
			}
			c.SSIM = truth.ssim(mask)
			if which[j] < 0 || c.Mean() > best[j].Mean() || (c.Mean() == best[j].Mean() && i < which[j]) {
				best[j], which[j] = c, i
			}
		}
	}
	return best, which, nil
}
