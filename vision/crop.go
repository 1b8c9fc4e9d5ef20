package vision

import (
	"fmt"

	"gocv.io/x/gocv"
)

// CellSegmentationVersion names the behaviour of SegmentCell. A model is
// trained on inputs SegmentCell prepared and records this version in its
// manifest; change it whenever SegmentCell's output changes, so a model is
// never fed inputs unlike those it was trained on.
const CellSegmentationVersion = "baseline-1"

// CellMasks are the masks of the one white cell centred in a crop.
type CellMasks struct {
	Nucleus *Mask // the nucleus (all lobes)
	Cell    *Mask // nucleus plus cytoplasm: the whole white cell
}

// SegmentCell segments the white cell at the centre of a single-cell crop
// (8-bit BGR), without ground truth. This is the segmentation the device
// applies before classification, and the one `allscreen prepare` writes
// for training, so both see the same input.
//
// Baseline: k=3 in BGR after the paper's blur, the lowest-green cluster as
// nucleus, the whole cell as the nucleus dilated.
func SegmentCell(crop gocv.Mat) (*CellMasks, error) {
	if err := checkBGR(crop); err != nil {
		return nil, fmt.Errorf("segment cell: %w", err)
	}
	b := Blur(crop)
	defer b.Close()
	cl, err := Cluster(b, KMeansOptions{K: 3, Space: SpaceBGR, Seed: 1})
	if err != nil {
		return nil, fmt.Errorf("segment cell: %w", err)
	}
	nuc := &Mask{W: cl.W, H: cl.H, Pix: cl.Mask(NucleusCluster(cl))}
	cell, err := nuc.morph(gocv.MorphDilate, max(3, min(cl.W, cl.H)/16))
	if err != nil {
		return nil, err
	}
	return &CellMasks{Nucleus: nuc, Cell: cell}, nil
}
