package vision

// NucleusCluster returns the index of the cluster most likely to be nuclei,
// from the cluster colours alone: Romanowsky-stained nuclei are the darkest
// purple, lowest in green.
func NucleusCluster(c *Clusters) int {
	best := 0
	for i := range c.BGR {
		if c.Counts[i] > 0 && (c.Counts[best] == 0 || c.BGR[i][1] < c.BGR[best][1]) {
			best = i
		}
	}
	return best
}
