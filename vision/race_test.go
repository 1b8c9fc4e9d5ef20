//go:build race

package vision

// raceEnabled: the race detector slows the real-data floors 5-10 times;
// the heaviest run without it, from make (see mk/fields.mk).
const raceEnabled = true
