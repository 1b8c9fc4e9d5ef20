package vision

import (
	"image"
	"math"
	"slices"
)

// Region bookkeeping in pure Go on small (working-resolution) masks:
// connected components, hole filling and splitting touching cells. These
// run on a few hundred thousand pixels, where Go is fast enough and no
// OpenCV exception can abort the process.

// region is one connected set of pixels in a label image.
type pixelRegion struct {
	label int
	area  int
	box   image.Rectangle
	sumX  int
	sumY  int
}

func (r pixelRegion) center() (float64, float64) {
	return float64(r.sumX) / float64(r.area), float64(r.sumY) / float64(r.area)
}

// labelRegions labels the 8-connected components of the set pixels of
// m (w x h, non-zero = set). Labels are 1..n in raster order of first
// pixel; 0 is background.
func labelRegions(m []uint8, w, h int) ([]int32, []pixelRegion) {
	labels := make([]int32, w*h)
	var regions []pixelRegion
	stack := make([]int, 0, 1024)
	for start := range m {
		if m[start] == 0 || labels[start] != 0 {
			continue
		}
		id := int32(len(regions) + 1)
		x0, y0 := start%w, start/w
		r := pixelRegion{label: int(id), box: image.Rect(x0, y0, x0+1, y0+1)}
		labels[start] = id
		stack = append(stack[:0], start)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := p%w, p/w
			r.area++
			r.sumX += x
			r.sumY += y
			r.box = r.box.Union(image.Rect(x, y, x+1, y+1))
			for dy := -1; dy <= 1; dy++ {
				yy := y + dy
				if yy < 0 || yy >= h {
					continue
				}
				for dx := -1; dx <= 1; dx++ {
					xx := x + dx
					if xx < 0 || xx >= w {
						continue
					}
					q := yy*w + xx
					if m[q] != 0 && labels[q] == 0 {
						labels[q] = id
						stack = append(stack, q)
					}
				}
			}
		}
		regions = append(regions, r)
	}
	return labels, regions
}

// fillEnclosedHoles sets every unset pixel of m that the image border cannot reach
// through unset pixels (4-connected): the pale centre of a red cell, the
// light gaps between the lobes of a nucleus.
func fillEnclosedHoles(m []uint8, w, h int) {
	holes, _ := enclosedHoles(m, w, h)
	for p, l := range holes {
		if l > 0 {
			m[p] = 255
		}
	}
}

// enclosedHoles labels the holes of m (w x h): the 4-connected regions of
// unset pixels the image border does not reach. It returns each pixel's
// hole (1..n; 0 where m is set or the border reaches) and each hole's
// area in pixels (index label-1).
func enclosedHoles(m []uint8, w, h int) (labels []int32, areas []int) {
	labels = make([]int32, w*h)
	const outside = -1
	stack := make([]int, 0, 1024)
	flood := func(start int, label int32) int {
		n := 0
		labels[start] = label
		stack = append(stack[:0], start)
		push := func(q int) {
			if m[q] == 0 && labels[q] == 0 {
				labels[q] = label
				stack = append(stack, q)
			}
		}
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			n++
			x, y := p%w, p/w
			if x > 0 {
				push(p - 1)
			}
			if x < w-1 {
				push(p + 1)
			}
			if y > 0 {
				push(p - w)
			}
			if y < h-1 {
				push(p + w)
			}
		}
		return n
	}
	for p := range m {
		x, y := p%w, p/w
		if (x == 0 || y == 0 || x == w-1 || y == h-1) && m[p] == 0 && labels[p] == 0 {
			flood(p, outside)
		}
	}
	for p := range m {
		if m[p] == 0 && labels[p] == 0 {
			areas = append(areas, flood(p, int32(len(areas)+1)))
		}
	}
	for p, l := range labels {
		if l == outside {
			labels[p] = 0
		}
	}
	return labels, areas
}

// splitByDynamics splits the set pixels of a distance map (dist > 0) into
// regions, one per peak of dynamic at least dyn and of height at least
// minPeak: two touching round cells give two peaks of the distance to the
// background joined by a saddle, and the saddle is lower than both peaks
// by about their radius minus half the width of the neck. Shallower peaks
// (a bump on one cell's outline) and lower ones (a blob too thin to be a
// cell of its own) merge into their deeper neighbour. It is a watershed by
// flooding from the highest distance down with union-find. Labels are
// 1..n; 0 is background.
func splitByDynamics(dist []float32, w, h int, dyn, minPeak float32) ([]int32, int) {
	order := make([]int, 0, len(dist)/4)
	for p, d := range dist {
		if d > 0 {
			order = append(order, p)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case dist[a] > dist[b]:
			return -1
		case dist[a] < dist[b]:
			return 1
		}
		return 0
	})
	basin := make([]int32, w*h) // basin id + 1 per processed pixel
	var parent []int32
	var peak []float32
	find := func(b int32) int32 {
		for parent[b] != b {
			parent[b] = parent[parent[b]]
			b = parent[b]
		}
		return b
	}
	var roots []int32
	for _, p := range order {
		x, y := p%w, p/w
		level := dist[p]
		roots = roots[:0]
		for dy := -1; dy <= 1; dy++ {
			yy := y + dy
			if yy < 0 || yy >= h {
				continue
			}
			for dx := -1; dx <= 1; dx++ {
				xx := x + dx
				if (dx == 0 && dy == 0) || xx < 0 || xx >= w {
					continue
				}
				if b := basin[yy*w+xx]; b != 0 {
					r := find(b - 1)
					if !slices.Contains(roots, r) {
						roots = append(roots, r)
					}
				}
			}
		}
		if len(roots) == 0 {
			id := int32(len(parent))
			parent = append(parent, id)
			peak = append(peak, level)
			basin[p] = id + 1
			continue
		}
		// The deepest neighbouring basin absorbs every shallow one.
		deepest := roots[0]
		for _, r := range roots[1:] {
			if peak[r] > peak[deepest] {
				deepest = r
			}
		}
		for _, r := range roots {
			if r != deepest && (peak[r]-level < dyn || peak[r] < minPeak) {
				parent[r] = deepest
			}
		}
		basin[p] = deepest + 1
	}
	labels := make([]int32, w*h)
	ids := map[int32]int32{}
	for p, b := range basin {
		if b == 0 {
			continue
		}
		r := find(b - 1)
		id, ok := ids[r]
		if !ok {
			id = int32(len(ids) + 1)
			ids[r] = id
		}
		labels[p] = id
	}
	return labels, len(ids)
}

// distanceToBackground returns, for each set pixel of m, the Euclidean
// distance to the nearest unset pixel (0 on unset pixels). Pixels beyond
// the image border count as set when outsideSet (a cell cut by the edge
// keeps the height of its centre, as if the rest were there) and as unset
// otherwise (a blob is measured as the part in view). Exact, by Felzenszwalb and Huttenlocher's
// two-pass lower envelope of parabolas. (gocv v0.25.0's DistanceTransform
// mask-size constants do not match OpenCV's, and a wrong one aborts.)
func distanceToBackground(m []uint8, w, h int, outsideSet bool) []float32 {
	const inf = float64(1 << 40)
	f := make([]float64, max(w, h)+2)
	d := make([]float64, max(w, h)+2)
	v := make([]int, max(w, h)+2)
	z := make([]float64, max(w, h)+3)
	// 1-D squared distance transform of f[0:n] into d[0:n].
	dt1 := func(n int) {
		k := 0
		v[0] = 0
		z[0], z[1] = -inf, inf
		for q := 1; q < n; q++ {
			s := ((f[q] + float64(q*q)) - (f[v[k]] + float64(v[k]*v[k]))) / float64(2*q-2*v[k])
			for s <= z[k] {
				k--
				s = ((f[q] + float64(q*q)) - (f[v[k]] + float64(v[k]*v[k]))) / float64(2*q-2*v[k])
			}
			k++
			v[k] = q
			z[k], z[k+1] = s, inf
		}
		k = 0
		for q := range n {
			for z[k+1] < float64(q) {
				k++
			}
			d[q] = float64((q-v[k])*(q-v[k])) + f[v[k]]
		}
	}
	pad := 0.0
	if outsideSet {
		pad = inf
	}
	sq := make([]float64, w*h)
	// Columns, with a virtual unset pixel above and below the image.
	for x := range w {
		f[0] = pad
		for y := range h {
			if m[y*w+x] != 0 {
				f[y+1] = inf
			} else {
				f[y+1] = 0
			}
		}
		f[h+1] = pad
		dt1(h + 2)
		for y := range h {
			sq[y*w+x] = d[y+1]
		}
	}
	// Rows, likewise padded.
	out := make([]float32, w*h)
	for y := range h {
		f[0] = pad
		copy(f[1:], sq[y*w:(y+1)*w])
		f[w+1] = pad
		dt1(w + 2)
		for x := range w {
			if m[y*w+x] != 0 {
				out[y*w+x] = float32(math.Sqrt(d[x+1]))
			}
		}
	}
	return out
}

// growLabels extends labelled seed pixels through a mask: every set pixel
// of mask takes the label of the nearest seed reachable inside the mask
// (breadth-first, 8-connected). Mask pixels no seed reaches stay 0.
func growLabels(seeds []int32, mask []uint8, w, h int) []int32 {
	out := make([]int32, w*h)
	queue := make([]int, 0, 1024)
	for p, l := range seeds {
		if l != 0 && mask[p] != 0 {
			out[p] = l
			queue = append(queue, p)
		}
	}
	for i := 0; i < len(queue); i++ {
		p := queue[i]
		x, y := p%w, p/w
		for dy := -1; dy <= 1; dy++ {
			yy := y + dy
			if yy < 0 || yy >= h {
				continue
			}
			for dx := -1; dx <= 1; dx++ {
				xx := x + dx
				if xx < 0 || xx >= w {
					continue
				}
				q := yy*w + xx
				if mask[q] != 0 && out[q] == 0 {
					out[q] = out[p]
					queue = append(queue, q)
				}
			}
		}
	}
	return out
}

// mergeSmallRegions joins each region whose weight (its nucleus pixels) is
// below minWeight into the touching region it shares the longest border
// with, smallest first, until every region is heavy enough or touches no
// other. The lobes of a neutrophil's nucleus, split apart like separate
// cells, so become one cell again, while two touching blasts, each with a
// nucleus bigger than a red cell, stay two. A region the image's edge cuts
// needs only edgeWeight: it is a cell partly out of view, not a lobe.
// Labels are renumbered 1..n.
func mergeSmallRegions(labels []int32, weight func(p int) bool, w, h int, minWeight, edgeWeight int) []int32 {
	n := int32(0)
	for _, l := range labels {
		n = max(n, l)
	}
	parent := make([]int32, n+1)
	size := make([]int, n+1)
	for i := range parent {
		parent[i] = int32(i)
	}
	atEdge := make([]bool, n+1)
	for p, l := range labels {
		if l == 0 {
			continue
		}
		if weight(p) {
			size[l]++
		}
		if x, y := p%w, p/w; x == 0 || y == 0 || x == w-1 || y == h-1 {
			atEdge[l] = true
		}
	}
	light := func(r int32) bool {
		if atEdge[r] {
			return size[r] < edgeWeight
		}
		return size[r] < minWeight
	}
	find := func(a int32) int32 {
		for parent[a] != a {
			parent[a] = parent[parent[a]]
			a = parent[a]
		}
		return a
	}
	for {
		// Borders between current regions (right and down neighbours).
		border := map[[2]int32]int{}
		for y := range h {
			for x := range w {
				a := labels[y*w+x]
				if a == 0 {
					continue
				}
				a = find(a)
				for _, q := range [2]int{x + 1, y*w + w + x} {
					var b int32
					switch {
					case q == x+1 && x+1 < w:
						b = labels[y*w+x+1]
					case q != x+1 && y+1 < h:
						b = labels[(y+1)*w+x]
					}
					if b == 0 {
						continue
					}
					if b = find(b); b != a {
						border[[2]int32{min(a, b), max(a, b)}]++
					}
				}
			}
		}
		// The lightest region that has a neighbour merges into it.
		var small, into int32
		for pair := range border {
			for _, r := range pair {
				if light(r) && (small == 0 || size[r] < size[small] || (size[r] == size[small] && r < small)) {
					small = r
				}
			}
		}
		if small == 0 {
			break
		}
		longest := -1
		for pair, k := range border {
			var other int32
			switch small {
			case pair[0]:
				other = pair[1]
			case pair[1]:
				other = pair[0]
			default:
				continue
			}
			if k > longest || (k == longest && other < into) {
				into, longest = other, k
			}
		}
		parent[small] = into
		size[into] += size[small]
		atEdge[into] = atEdge[into] || atEdge[small]
	}
	out := make([]int32, len(labels))
	ids := map[int32]int32{}
	for p, l := range labels {
		if l == 0 {
			continue
		}
		r := find(l)
		id, ok := ids[r]
		if !ok {
			id = int32(len(ids) + 1)
			ids[r] = id
		}
		out[p] = id
	}
	return out
}
