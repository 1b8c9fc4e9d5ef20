package vision

import (
	"fmt"
	"math"

	"gocv.io/x/gocv"
)

// GrabCut (Rother et al. 2004) finds the whole cell around the nucleus: a
// colour model of the cell against one of its surroundings, with a
// smoothness term that keeps the outline whole. It runs here in Go, one
// iteration of exactly the steps of OpenCV's grabCut in GC_EVAL mode (same
// colour models, same n-link weights, same max-flow algorithm: on ALL-IDB2
// it gives OpenCV's masks pixel for pixel, and a test holds it to that),
// for two reasons. Its smoothness weight gamma (OpenCV's fixed 50) can
// follow the working resolution: a crop segmented on a downscaled copy
// keeps the balance between the colour and the outline terms it has at
// full size (halving the side halves the outline's pixels but quarters the
// area's, so with a fixed gamma the thin cytoplasm of a neutrophil is
// smoothed away). And the pixels certain to be background or nucleus stay
// out of the graph. The colour models are seeded with the package's own
// seeded k-means (OpenCV would use its thread's global random generator),
// so the output is deterministic.

// OpenCV's grabCut mask values.
const (
	gcBG   = 0 // certainly background
	gcFG   = 1 // certainly the cell
	gcPRBG = 2 // probably background
	gcPRFG = 3 // probably the cell
)

// dblEpsilon is C's DBL_EPSILON, OpenCV's test for a singular covariance.
const dblEpsilon = 2.220446049250313e-16

const (
	gmmComponents = 5 // OpenCV's GMM::componentsCount
	// grabCutGamma is the smoothness weight at a crop's own resolution
	// (OpenCV's value); a crop segmented on a copy downscaled by f uses
	// f x grabCutGamma.
	grabCutGamma = 50.0
	// cellReach bounds the cell: nothing farther than this x sqrt(nucleus
	// area) from the nucleus can be cytoplasm. cellSeedRing marks the ring
	// of probable cytoplasm around the nucleus the colour model starts from.
	cellReach    = 1.0
	cellSeedRing = 0.3
)

// grabCutCell returns the whole cell: nucleus certain, the stained pixels
// in a ring around it probable cell, the rest within reach probable
// background, farther background certain. gamma is the smoothness weight.
func grabCutCell(blurred gocv.Mat, nuc, stained *Mask, seed uint64, gamma float64) (*Mask, error) {
	in, region, err := grabCutSeeds(blurred, nuc, stained, seed)
	if err != nil || in == nil {
		return region, err
	}
	grabCut(in.bgr, in.w, in.h, in.gm, in.fg, in.bg, gamma)
	cell := NewMask(in.w, in.h)
	for p, v := range in.gm {
		if v == gcFG || v == gcPRFG {
			cell.Pix[p] = 255
		}
	}
	return keepTouching(fillHoles(cell), nuc)
}

// grabCutInput is what one GrabCut run starts from.
type grabCutInput struct {
	bgr    []byte  // the blurred crop, BGR
	w, h   int     //
	gm     []uint8 // gcBG, gcFG, gcPRBG or gcPRFG per pixel
	fg, bg []float64
}

// grabCutSeeds marks the pixels and fits the starting colour models. It
// returns no input, only the probable cell region, when there are too few
// pixels on one side to fit a model: a crop that is all cell is all cell.
func grabCutSeeds(blurred gocv.Mat, nuc, stained *Mask, seed uint64) (*grabCutInput, *Mask, error) {
	w, h := nuc.W, nuc.H
	area := nuc.Area()
	d := distanceSq(nuc)
	near := func(p int, frac float64) bool { r := relRadius(frac, area); return d[p] <= r*r }
	// Probable cell: the stained region around the nucleus, holes filled
	// and thin bridges to touching red cells cut.
	region := fillHoles(union(stained, nuc)).openDisc(relRadius(0.1, area))
	region, err := keepTouching(union(region, nuc), nuc)
	if err != nil {
		return nil, nil, err
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
	if nFG < 4*gmmComponents || nBG < 4*gmmComponents {
		return nil, region, nil
	}
	bgr := blurred.ToBytes()
	if len(bgr) != 3*w*h {
		return nil, nil, fmt.Errorf("grabcut: image has %d bytes, want %d", len(bgr), 3*w*h)
	}
	return &grabCutInput{bgr: bgr, w: w, h: h, gm: gm,
		fg: gmmModel(bgr, gm, true, seed), bg: gmmModel(bgr, gm, false, seed)}, region, nil
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

// nlinkTable: squared neighbour differences below it have their weight
// kept in a table.
const nlinkTable = 4096

// minLogDensity: below it a density is 0 in float64 (exp underflows).
var minLogDensity = math.Log(math.SmallestNonzeroFloat64)

// negLog is -log(d), finite even where d underflowed to 0 (OpenCV's would
// be +Inf, and two infinite t-links would make the cut undefined).
func negLog(d float64) float64 {
	if d <= 0 {
		return -minLogDensity
	}
	return -math.Log(d)
}

// gcGMM is a Gaussian mixture colour model in OpenCV's GMM layout.
type gcGMM struct {
	coefs   [gmmComponents]float64
	mean    [gmmComponents][3]float64
	cov     [gmmComponents][9]float64
	inv     [gmmComponents][9]float64
	norm    [gmmComponents]float64 // 1/sqrt(det)
	logNorm [gmmComponents]float64
}

func newGCGMM(model []float64) *gcGMM {
	g := &gcGMM{}
	for c := range gmmComponents {
		g.coefs[c] = model[c]
		copy(g.mean[c][:], model[gmmComponents+3*c:gmmComponents+3*c+3])
		copy(g.cov[c][:], model[4*gmmComponents+9*c:4*gmmComponents+9*c+9])
	}
	g.prepare()
	return g
}

func (g *gcGMM) prepare() {
	for ci := range gmmComponents {
		if g.coefs[ci] <= 0 {
			continue
		}
		c := g.cov[ci]
		det := det3(c)
		g.norm[ci] = 1 / math.Sqrt(det)
		g.logNorm[ci] = math.Log(g.norm[ci])
		g.inv[ci] = [9]float64{
			(c[4]*c[8] - c[5]*c[7]) / det, -(c[1]*c[8] - c[2]*c[7]) / det, (c[1]*c[5] - c[2]*c[4]) / det,
			-(c[3]*c[8] - c[5]*c[6]) / det, (c[0]*c[8] - c[2]*c[6]) / det, -(c[0]*c[5] - c[2]*c[3]) / det,
			(c[3]*c[7] - c[4]*c[6]) / det, -(c[0]*c[7] - c[1]*c[6]) / det, (c[0]*c[4] - c[1]*c[3]) / det,
		}
	}
}

// comp is the density of component ci at colour x (not weighted).
func (g *gcGMM) comp(ci int, x [3]float64) float64 {
	if g.coefs[ci] <= 0 {
		return 0
	}
	m := &g.mean[ci]
	d0, d1, d2 := x[0]-m[0], x[1]-m[1], x[2]-m[2]
	iv := &g.inv[ci]
	mult := d0*(d0*iv[0]+d1*iv[3]+d2*iv[6]) + d1*(d0*iv[1]+d1*iv[4]+d2*iv[7]) + d2*(d0*iv[2]+d1*iv[5]+d2*iv[8])
	return g.norm[ci] * math.Exp(-0.5*mult)
}

func (g *gcGMM) density(x [3]float64) float64 {
	s := 0.0
	for ci := range gmmComponents {
		s += g.coefs[ci] * g.comp(ci, x)
	}
	return s
}

// which is the component whose density at x is highest, as OpenCV's
// GMM::whichComponent, compared in logs (no exp); 0 when every density
// underflows to 0 in OpenCV's arithmetic.
func (g *gcGMM) which(x [3]float64) int {
	k, best := -1, math.Inf(-1)
	for ci := range gmmComponents {
		if g.coefs[ci] <= 0 {
			continue
		}
		m := &g.mean[ci]
		d0, d1, d2 := x[0]-m[0], x[1]-m[1], x[2]-m[2]
		iv := &g.inv[ci]
		mult := d0*(d0*iv[0]+d1*iv[3]+d2*iv[6]) + d1*(d0*iv[1]+d1*iv[4]+d2*iv[7]) + d2*(d0*iv[2]+d1*iv[5]+d2*iv[8])
		if l := g.logNorm[ci] - 0.5*mult; l > best {
			k, best = ci, l
		}
	}
	if k < 0 || best < minLogDensity {
		return 0
	}
	return k
}

// gmmLearner accumulates the pixels assigned to each component.
type gmmLearner struct {
	n    [gmmComponents]float64
	sum  [gmmComponents][3]float64
	prod [gmmComponents][9]float64
}

func (l *gmmLearner) add(ci int, x [3]float64) {
	l.n[ci]++
	for i := range 3 {
		l.sum[ci][i] += x[i]
		for j := range 3 {
			l.prod[ci][3*i+j] += x[i] * x[j]
		}
	}
}

func (l *gmmLearner) model() *gcGMM {
	g := &gcGMM{}
	total := 0.0
	for _, n := range l.n {
		total += n
	}
	for ci := range gmmComponents {
		n := l.n[ci]
		if n == 0 {
			continue
		}
		g.coefs[ci] = n / total
		m := &g.mean[ci]
		for i := range 3 {
			m[i] = l.sum[ci][i] / n
		}
		c := &g.cov[ci]
		for i := range 3 {
			for j := range 3 {
				c[3*i+j] = l.prod[ci][3*i+j]/n - m[i]*m[j]
			}
		}
		if det3(*c) <= dblEpsilon {
			c[0] += 0.01
			c[4] += 0.01
			c[8] += 0.01
		}
	}
	g.prepare()
	return g
}

// grabCut runs one GrabCut iteration on 8-bit BGR pixels (w x h) and
// the mask gm (gcBG, gcFG, gcPRBG, gcPRFG), starting from the colour
// models fg and bg (OpenCV's layout), with smoothness weight gamma (OpenCV
// uses 50). It rewrites the probable pixels of gm.
func grabCut(bgr []byte, w, h int, gm []uint8, fgModel, bgModel []float64, gamma float64) {
	n := w * h
	fx := make([]float64, 3*n) // the colours as OpenCV's Vec3d
	for i, v := range bgr[:3*n] {
		fx[i] = float64(v)
	}
	// Colour models: assign, then learn.
	fg0, bg0 := newGCGMM(fgModel), newGCGMM(bgModel)
	var lf, lb gmmLearner
	for p := range n {
		x := [3]float64{fx[3*p], fx[3*p+1], fx[3*p+2]}
		if v := gm[p]; v == gcFG || v == gcPRFG {
			lf.add(fg0.which(x), x)
		} else {
			lb.add(bg0.which(x), x)
		}
	}
	fg, bg := lf.model(), lb.model()

	// beta: the inverse of twice the mean squared colour difference of
	// neighbours (left, up-left, up, up-right), over the whole image, in
	// OpenCV's order of summation.
	diff2 := func(p, q int) float64 {
		d0, d1, d2 := fx[3*p]-fx[3*q], fx[3*p+1]-fx[3*q+1], fx[3*p+2]-fx[3*q+2]
		return d0*d0 + d1*d1 + d2*d2
	}
	beta := 0.0
	for y := range h {
		row := y * w
		for x := range w {
			p := row + x
			if x > 0 {
				beta += diff2(p, p-1)
			}
			if y > 0 {
				if x > 0 {
					beta += diff2(p, p-w-1)
				}
				beta += diff2(p, p-w)
				if x < w-1 {
					beta += diff2(p, p-w+1)
				}
			}
		}
	}
	if beta <= dblEpsilon {
		beta = 0
	} else {
		beta = 1 / (2 * beta / float64(4*w*h-3*w-3*h+2))
	}
	gammaDiag := gamma / math.Sqrt2

	// The graph: one node per probable pixel.
	node := make([]int32, n)
	nodes := 0
	for p, v := range gm {
		if v == gcPRBG || v == gcPRFG {
			node[p] = int32(nodes)
			nodes++
		} else {
			node[p] = -1
		}
	}
	if nodes == 0 {
		return
	}
	g := newFlowGraph(nodes, 4*nodes)
	src := make([]float64, nodes) // capacity from the source (cell)
	snk := make([]float64, nodes) // capacity to the sink (background)
	// The colour terms, once per distinct colour (a crop has about half
	// as many colours as pixels).
	seen := make(map[uint32]int32, nodes)
	for p := range gm {
		i := node[p]
		if i < 0 {
			continue
		}
		key := uint32(bgr[3*p])<<16 | uint32(bgr[3*p+1])<<8 | uint32(bgr[3*p+2])
		if j, ok := seen[key]; ok {
			src[i], snk[i] = src[j], snk[j]
			continue
		}
		seen[key] = i
		x := [3]float64{fx[3*p], fx[3*p+1], fx[3*p+2]}
		src[i] = negLog(bg.density(x))
		snk[i] = negLog(fg.density(x))
	}
	// n-links: between two probable pixels an edge; between a probable
	// and a certain pixel, a t-link to the certain pixel's side.
	// exp(-beta d2) depends only on the squared difference d2, a small
	// integer between neighbours of a blurred image: each is computed once.
	expd := make([]float64, nlinkTable)
	known := make([]bool, nlinkTable)
	link := func(p, q int, gam float64) {
		i, j := node[p], node[q]
		if i < 0 && j < 0 {
			return
		}
		d2 := diff2(p, q)
		var e float64
		if k := int(d2); k < nlinkTable {
			if !known[k] {
				expd[k], known[k] = math.Exp(-beta*d2), true
			}
			e = expd[k]
		} else {
			e = math.Exp(-beta * d2)
		}
		wt := gam * e
		switch {
		case i >= 0 && j >= 0:
			g.addEdge(i, j, wt, wt)
		case i >= 0:
			if gm[q] == gcFG {
				src[i] += wt
			} else {
				snk[i] += wt
			}
		default:
			if gm[p] == gcFG {
				src[j] += wt
			} else {
				snk[j] += wt
			}
		}
	}
	for y := range h {
		row := y * w
		for x := range w {
			p := row + x
			if x > 0 {
				link(p, p-1, gamma)
			}
			if y > 0 {
				if x > 0 {
					link(p, p-w-1, gammaDiag)
				}
				link(p, p-w, gamma)
				if x < w-1 {
					link(p, p-w+1, gammaDiag)
				}
			}
		}
	}
	for i := range nodes {
		g.setTerminal(int32(i), src[i], snk[i])
	}
	g.maxFlow()
	for p := range gm {
		if i := node[p]; i >= 0 {
			if g.inSource(i) {
				gm[p] = gcPRFG
			} else {
				gm[p] = gcPRBG
			}
		}
	}
}
