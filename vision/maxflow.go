package vision

// flowGraph is a minimum s-t cut by the Boykov-Kolmogorov augmenting-path
// algorithm (2004), the one OpenCV's grabCut uses (its GCGraph), ported
// with the same search order. Terminal capacities are kept as one signed
// residual per node (positive: from the source; negative: to the sink).
type flowGraph struct {
	// nodes
	first  []int32   // first edge out of the node, 0 when none
	parent []int32   // edge to the parent; 0 none, flowTerminal, flowOrphan
	next   []int32   // next in the active queue; -1 not queued
	ts     []int32   // time stamp of dist
	dist   []int32   // distance to the terminal
	term   []float64 // terminal residual
	tree   []uint8   // 0 source tree, 1 sink tree
	// edges: 2k and 2k+1 are the two directions of one pair; index 0 and
	// 1 are unused so that 0 can mean "none".
	dst   []int32
	enext []int32
	cap   []float64
	flow  float64
}

const (
	flowTerminal = -1
	flowOrphan   = -2
)

func newFlowGraph(nodes, edgePairs int) *flowGraph {
	g := &flowGraph{
		first: make([]int32, nodes), parent: make([]int32, nodes), next: make([]int32, nodes+1),
		ts: make([]int32, nodes), dist: make([]int32, nodes), term: make([]float64, nodes), tree: make([]uint8, nodes),
		dst: make([]int32, 2, 2+2*edgePairs), enext: make([]int32, 2, 2+2*edgePairs), cap: make([]float64, 2, 2+2*edgePairs),
	}
	return g
}

// addEdge adds i->j with capacity w and j->i with capacity rev.
func (g *flowGraph) addEdge(i, j int32, w, rev float64) {
	e := int32(len(g.dst))
	g.dst = append(g.dst, j, i)
	g.enext = append(g.enext, g.first[i], g.first[j])
	g.cap = append(g.cap, w, rev)
	g.first[i] = e
	g.first[j] = e + 1
}

// setTerminal gives node i capacity src from the source and snk to the
// sink (once per node; the smaller of the two flows at once).
func (g *flowGraph) setTerminal(i int32, src, snk float64) {
	g.flow += min(src, snk)
	g.term[i] = src - snk
}

// inSource reports whether node i is on the source side of the minimum
// cut: every node that cannot reach the sink, which is every node outside
// the sink's search tree when the algorithm ends. (OpenCV reads the tree
// label of a free node too, which a node orphaned from the sink tree keeps:
// then its cut is not always minimal.)
func (g *flowGraph) inSource(i int32) bool { return g.tree[i] == 0 || g.parent[i] == 0 }

// maxFlow runs the algorithm and returns the flow, which equals the
// capacity of the minimum cut.
func (g *flowGraph) maxFlow() float64 {
	n := int32(len(g.first))
	// The active queue: next[v] is the node after v, -1 when v is not
	// queued; the stub n ends it.
	next := g.next
	for i := range next {
		next[i] = -1
	}
	stub := n
	first, last := stub, stub
	for v := int32(0); v < n; v++ {
		g.ts[v] = 0
		if g.term[v] != 0 {
			next[last] = v
			last = v
			g.dist[v] = 1
			g.parent[v] = flowTerminal
			if g.term[v] < 0 {
				g.tree[v] = 1
			} else {
				g.tree[v] = 0
			}
		} else {
			g.parent[v] = 0
		}
	}
	first = next[stub]
	next[last] = stub
	if first == -1 { // nothing active
		first = stub
	}
	next[stub] = -1
	var orphans []int32
	currTS := int32(0)
	dst, cp, enext := g.dst, g.cap, g.enext
	for {
		e0 := int32(-1)
		for first != stub {
			v := first
			if g.parent[v] != 0 {
				vt := int32(g.tree[v])
				for ei := g.first[v]; ei != 0; ei = enext[ei] {
					if cp[ei^vt] == 0 {
						continue
					}
					u := dst[ei]
					if g.parent[u] == 0 {
						g.tree[u] = uint8(vt)
						g.parent[u] = ei ^ 1
						g.ts[u] = g.ts[v]
						g.dist[u] = g.dist[v] + 1
						if next[u] == -1 {
							next[u] = stub
							next[last] = u
							last = u
						}
						continue
					}
					if int32(g.tree[u]) != vt {
						e0 = ei ^ vt
						break
					}
					if g.dist[u] > g.dist[v]+1 && g.ts[u] <= g.ts[v] {
						g.parent[u] = ei ^ 1
						g.ts[u] = g.ts[v]
						g.dist[u] = g.dist[v] + 1
					}
				}
				if e0 > 0 {
					break
				}
			}
			first = next[v]
			next[v] = -1
		}
		if e0 <= 0 {
			return g.flow
		}
		// The bottleneck of the path.
		minW := cp[e0]
		for k := int32(1); k >= 0; k-- {
			v := dst[e0^k]
			for {
				ei := g.parent[v]
				if ei < 0 {
					break
				}
				minW = min(minW, cp[ei^k])
				v = dst[ei]
			}
			w := g.term[v]
			if w < 0 {
				w = -w
			}
			minW = min(minW, w)
		}
		// Push it and collect the orphans.
		cp[e0] -= minW
		cp[e0^1] += minW
		g.flow += minW
		for k := int32(1); k >= 0; k-- {
			v := dst[e0^k]
			for {
				ei := g.parent[v]
				if ei < 0 {
					break
				}
				cp[ei^(k^1)] += minW
				cp[ei^k] -= minW
				if cp[ei^k] == 0 {
					orphans = append(orphans, v)
					g.parent[v] = flowOrphan
				}
				v = dst[ei]
			}
			g.term[v] += minW * float64(1-2*k)
			if g.term[v] == 0 {
				orphans = append(orphans, v)
				g.parent[v] = flowOrphan
			}
		}
		// Adopt the orphans.
		currTS++
		for len(orphans) > 0 {
			v2 := orphans[len(orphans)-1]
			orphans = orphans[:len(orphans)-1]
			minDist := int32(1<<31 - 1)
			e0 = 0
			vt := int32(g.tree[v2])
			for ei := g.first[v2]; ei != 0; ei = enext[ei] {
				if cp[ei^(vt^1)] == 0 {
					continue
				}
				u := dst[ei]
				if int32(g.tree[u]) != vt || g.parent[u] == 0 {
					continue
				}
				d := int32(0)
				for {
					if g.ts[u] == currTS {
						d += g.dist[u]
						break
					}
					ej := g.parent[u]
					d++
					if ej < 0 {
						if ej == flowOrphan {
							d = 1<<31 - 2
						} else {
							g.ts[u] = currTS
							g.dist[u] = 1
						}
						break
					}
					u = dst[ej]
				}
				d++
				if d < 1<<31-1 {
					if d < minDist {
						minDist = d
						e0 = ei
					}
					for u = dst[ei]; g.ts[u] != currTS; u = dst[g.parent[u]] {
						g.ts[u] = currTS
						d--
						g.dist[u] = d
					}
				}
			}
			g.parent[v2] = e0
			if e0 > 0 {
				g.ts[v2] = currTS
				g.dist[v2] = minDist
				continue
			}
			g.ts[v2] = 0
			for ei := g.first[v2]; ei != 0; ei = enext[ei] {
				u := dst[ei]
				ej := g.parent[u]
				if int32(g.tree[u]) != vt || ej == 0 {
					continue
				}
				if cp[ei^(vt^1)] != 0 && next[u] == -1 {
					next[u] = stub
					next[last] = u
					last = u
				}
				if ej > 0 && dst[ej] == v2 {
					orphans = append(orphans, u)
					g.parent[u] = flowOrphan
				}
			}
		}
	}
}
