package vision

import (
	"fmt"
	"image"
	"math"
	"runtime"

	"gocv.io/x/gocv"
)

// GrabCut (Rother et al. 2004) finds the whole cell around the nucleus: a
// colour model of the cell against one of its surroundings, with a
// smoothness term that keeps the outline whole. OpenCV's grabCut seeds its
// colour models with k-means on the thread's global random generator, so
// its output would change from call to call in a Go program; instead the
// models are seeded here with the package's own seeded k-means and OpenCV
// only iterates (GC_EVAL), which is deterministic.

// OpenCV's grabCut mask values.
const (
	gcBG   = 0 // certainly background
	gcFG   = 1 // certainly the cell
	gcPRBG = 2 // probably background
	gcPRFG = 3 // probably the cell
)

const (
	gmmComponents = 5 // OpenCV's GMM::componentsCount
	grabCutIters  = 1
	// cellReach bounds the cell: nothing farther than this x sqrt(nucleus
	// area) from the nucleus can be cytoplasm. cellSeedRing marks the ring
	// of probable cytoplasm around the nucleus the colour model starts from.
	cellReach    = 1.0
	cellSeedRing = 0.3
)

// grabCutCell returns the whole cell: nucleus certain, the stained pixels
// in a ring around it probable cell, the rest within reach probable
// background, farther background certain.
func grabCutCell(blurred gocv.Mat, nuc, stained *Mask, seed uint64) (*Mask, error) {
	w, h := nuc.W, nuc.H
	area := nuc.Area()
	d := distanceSq(nuc)
	near := func(p int, frac float64) bool { r := relRadius(frac, area); return d[p] <= r*r }
	// Probable cell: the stained region around the nucleus, holes filled
	// and thin bridges to touching red cells cut.
	region := fillHoles(union(stained, nuc)).openDisc(relRadius(0.1, area))
	region, err := keepTouching(union(region, nuc), nuc)
	if err != nil {
		return nil, err
	}
	gm := make([]uint8, w*h)
	nFG, nBG := 0, 0
	for p := range gm {
		switch {
		case nuc.Pix[p] != 0:
			gm[p] = gcFG
		case near(p, cellSeedRing) && region.Pix[p] != 0:
			gm[p] = gcPRFG
		case near(p, cellReach):
			gm[p] = gcPRBG
		default:
			gm[p] = gcBG
		}
		if gm[p] == gcFG || gm[p] == gcPRFG {
			nFG++
		} else {
			nBG++
		}
	}
	// OpenCV needs samples of both; a crop that is all cell is all cell.
	if nFG < 4*gmmComponents || nBG < 4*gmmComponents {
		return region, nil
	}
	bgr := blurred.ToBytes()
	fgModel := gmmModel(bgr, gm, true, seed)
	bgModel := gmmModel(bgr, gm, false, seed)

	mask, err := NewMatCopy(h, w, gocv.MatTypeCV8U, gm)
	if err != nil {
		return nil, err
	}
	defer mask.Close()
	fgd, err := NewMatCopy(1, len(fgModel), gocv.MatTypeCV64F, float64Bytes(fgModel))
	if err != nil {
		return nil, err
	}
	defer fgd.Close()
	bgd, err := NewMatCopy(1, len(bgModel), gocv.MatTypeCV64F, float64Bytes(bgModel))
	if err != nil {
		return nil, err
	}
	defer bgd.Close()
	// GC_EVAL draws no random numbers, but pin the thread anyway so the
	// call cannot be split across threads mid-way by the Go scheduler.
	runtime.LockOSThread()
	gocv.GrabCut(blurred, &mask, image.Rect(0, 0, w, h), &bgd, &fgd, grabCutIters, gocv.GCEval)
	runtime.UnlockOSThread()
	out := mask.ToBytes()
	if len(out) != w*h {
		return nil, fmt.Errorf("grabcut returned %d mask values, want %d", len(out), w*h)
	}
	cell := NewMask(w, h)
	for p, v := range out {
		if v == gcFG || v == gcPRFG {
			cell.Pix[p] = 255
		}
	}
	return keepTouching(fillHoles(cell), nuc)
}

// gmmModel fits the colour model OpenCV's grabCut starts from, in its
// layout (5 weights, 5 means of 3, 5 covariances of 3x3), to the pixels
// marked cell (fg) or background in gm: k-means into 5 components, then
// each component's weight, mean and covariance. Like OpenCV, it adds 0.01
// to the variances so no covariance is singular.
func gmmModel(bgr []byte, gm []uint8, fg bool, seed uint64) []float64 {
	var pix []byte
	for p, v := range gm {
		if (v == gcFG || v == gcPRFG) == fg {
			pix = append(pix, bgr[3*p:3*p+3]...)
		}
	}
	colours, weights := distinctColours(pix)
	k := min(gmmComponents, len(weights))
	centers := kmeansPP(colours, weights, k, seed, 0)
	lloyd(colours, weights, centers, maxLloydIterations)
	var n [gmmComponents]float64
	var sum [gmmComponents][3]float64
	var prod [gmmComponents][3][3]float64
	var total float64
	for p, wt := range weights {
		x := [3]float64{float64(colours[3*p]), float64(colours[3*p+1]), float64(colours[3*p+2])}
		best, bestD := 0, math.Inf(1)
		for c, m := range centers {
			d := (x[0]-m[0])*(x[0]-m[0]) + (x[1]-m[1])*(x[1]-m[1]) + (x[2]-m[2])*(x[2]-m[2])
			if d < bestD {
				best, bestD = c, d
			}
		}
		f := float64(wt)
		n[best] += f
		total += f
		for i := range 3 {
			sum[best][i] += f * x[i]
			for j := range 3 {
				prod[best][i][j] += f * x[i] * x[j]
			}
		}
	}
	model := make([]float64, 13*gmmComponents)
	coefs, means, covs := model[:gmmComponents], model[gmmComponents:4*gmmComponents], model[4*gmmComponents:]
	for c := range k {
		if n[c] == 0 {
			continue
		}
		coefs[c] = n[c] / total
		var mu [3]float64
		for i := range 3 {
			mu[i] = sum[c][i] / n[c]
			means[3*c+i] = mu[i]
		}
		var cv [9]float64
		for i := range 3 {
			for j := range 3 {
				cv[3*i+j] = prod[c][i][j]/n[c] - mu[i]*mu[j]
			}
		}
		// OpenCV asserts a determinant above machine epsilon.
		for noise := 0.01; ; noise *= 10 {
			cv[0] += noise
			cv[4] += noise
			cv[8] += noise
			if det3(cv) > 1e-6 {
				break
			}
		}
		copy(covs[9*c:9*c+9], cv[:])
	}
	return model
}

func det3(c [9]float64) float64 {
	return c[0]*(c[4]*c[8]-c[5]*c[7]) - c[1]*(c[3]*c[8]-c[5]*c[6]) + c[2]*(c[3]*c[7]-c[4]*c[6])
}
