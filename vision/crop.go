package vision

import (
	"gocv.io/x/gocv"
)

// CellSegmentationVersion names the behaviour of SegmentCell. A model is
// trained on inputs SegmentCell prepared and records this version in its
// manifest; change it whenever SegmentCell's output changes, so a model is
// never fed inputs unlike those it was trained on.
const CellSegmentationVersion = "lab-central-local-grabcut-5"

// CellMasks are the masks of the one white cell centred in a crop.
type CellMasks struct {
	Nucleus *Mask // the nucleus (all lobes)
	Cell    *Mask // nucleus plus cytoplasm: the whole white cell
}

// SegmentCell segments the white cell at the centre of a single-cell crop
// (8-bit BGR, any size from MinCellCropSide up), without ground truth: the
// nucleus (all lobes) and the whole cell (nucleus and cytoplasm). This is
// the segmentation the device applies before classification, and the one
// `allscreen prepare` writes for training, so both see the same input. The
// cell may touch the crop's border; a cell already cut out onto black keeps
// that cut-out as its outline. A crop without a stained nucleus gives an
// error wrapping ErrNoNucleus. See SegmentCellWith for the steps.
func SegmentCell(crop gocv.Mat) (*CellMasks, error) {
	return SegmentCellWith(crop, DefaultSegmentOptions)
}
