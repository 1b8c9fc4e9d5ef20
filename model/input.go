package model

import (
	"fmt"
	"image"
	"math"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

// Masking modes of InputSpec.
const (
	// MaskCell replaces every pixel outside the segmented cell with the
	// neutral background: the model never sees the slide's own background,
	// whose colour differs by laboratory and, in ALL-IDB, by label.
	MaskCell = "cell"
	// MaskNone keeps the crop's pixels (the raw-crop comparison).
	MaskNone = "none"
)

// Framing modes of InputSpec.
const (
	// FrameCell takes a square around the segmented cell, Margin times its
	// larger side, so the cell fills the same share of the input whatever
	// the camera's magnification (ALL-IDB's blast and normal slides were
	// taken at different magnifications: absolute size would be a shortcut).
	FrameCell = "cell"
	// FrameCrop takes the whole crop as given.
	FrameCrop = "crop"
)

// Colour modes of InputSpec.
const (
	// ColourAsIs feeds the cell's colours as the camera saw them.
	ColourAsIs = ""
	// ColourLabStandard maps the colours of the cell's own pixels, in CIE
	// Lab, to a fixed mean and spread per channel (Reinhard et al. 2001):
	// a laboratory's stain strength and hue and its camera's white balance
	// move every colour of a cell alike, and this takes that move out while
	// the pattern inside the cell (chromatin, nucleoli, the nucleus against
	// the cytoplasm) stays. Measured per site, the cells' mean b* differs
	// by up to 56 levels between the four laboratories here.
	ColourLabStandard = "cell-lab-standard"
	// ColourGreyStandard keeps only the cell's own lightness, standardised
	// as ColourLabStandard standardises L*, and drops its hue (a* = b* = 0):
	// a grey cell whose chromatin, nucleoli and nucleus-to-cytoplasm
	// pattern stay while no laboratory's stain colour is left to learn.
	ColourGreyStandard = "cell-grey-standard"
)

// labStandard is the target of ColourLabStandard in OpenCV's 8-bit Lab
// (L scaled to 0..255, a and b offset by 128): about the average over
// the cells of the four training and test sites (ALL-IDB, PBC,
// bll-stages, wbcseg).
var labStandard = struct{ mean, sd [3]float64 }{mean: [3]float64{110, 162, 96}, sd: [3]float64{35, 13, 16}}

// InputSpec says how a white-cell crop becomes the model's input. It is
// part of the manifest, so a model file says how it must be fed.
type InputSpec struct {
	Size         int     `json:"size"`          // side of the square input, pixels
	ChannelOrder string  `json:"channel_order"` // order of the tensor's 3 channels: "RGB"
	Scale        float64 `json:"scale"`         // tensor value = 8-bit value * Scale
	Masking      string  `json:"masking"`       // MaskCell or MaskNone
	Framing      string  `json:"framing"`       // FrameCell or FrameCrop
	Margin       float64 `json:"margin"`        // FrameCell: square side / cell's larger side
	// Background is the neutral fill outside the cell (R, G, B).
	Background [3]uint8 `json:"background_rgb"`
	// Colour is ColourAsIs (omitted) or ColourLabStandard.
	Colour string `json:"colour,omitempty"`
}

// DefaultInputSpec is the compact model's input. 64x64 keeps the cell
// (about 53 pixels across) with its chromatin and nucleoli visible while
// training stays affordable on a shared 2-core machine.
var DefaultInputSpec = InputSpec{Size: 64, ChannelOrder: "RGB", Scale: 1.0 / 255, Masking: MaskCell,
	Framing: FrameCell, Margin: 1.2, Background: [3]uint8{128, 128, 128}}

// Limits on the input a model may ask for.
const (
	MinInputSide = 8
	MaxInputSide = 512
	// minCellShare is the smallest share of the crop a segmented cell may
	// cover before its outline is distrusted and the whole crop used.
	minCellShare = 0.01
)

// Check reports an input spec this code cannot honour.
func (s InputSpec) Check() error {
	switch {
	case s.Size < MinInputSide || s.Size > MaxInputSide:
		return fmt.Errorf("input size %d outside %d..%d", s.Size, MinInputSide, MaxInputSide)
	case s.ChannelOrder != "RGB" && s.ChannelOrder != "BGR":
		return fmt.Errorf("channel order %q (want RGB or BGR)", s.ChannelOrder)
	case !(s.Scale > 0 && s.Scale <= 1):
		return fmt.Errorf("scale %v outside (0, 1]", s.Scale)
	case s.Masking != MaskCell && s.Masking != MaskNone:
		return fmt.Errorf("masking %q (want %q or %q)", s.Masking, MaskCell, MaskNone)
	case s.Framing != FrameCell && s.Framing != FrameCrop:
		return fmt.Errorf("framing %q (want %q or %q)", s.Framing, FrameCell, FrameCrop)
	case s.Framing == FrameCell && !(s.Margin >= 1 && s.Margin <= 4):
		return fmt.Errorf("margin %v outside 1..4", s.Margin)
	case s.Colour != ColourAsIs && s.Colour != ColourLabStandard && s.Colour != ColourGreyStandard:
		return fmt.Errorf("colour %q (want %q, %q or none)", s.Colour, ColourLabStandard, ColourGreyStandard)
	}
	return nil
}

// needsSegmentation says whether the spec looks at the cell's outline.
func (s InputSpec) needsSegmentation() bool { return s.Masking == MaskCell || s.Framing == FrameCell }

// Input is one crop prepared for the model.
type Input struct {
	// Image is Size x Size 8-bit BGR: exactly what the model is fed, before
	// the channel order and scale of the spec are applied. Owned by the
	// caller, who must Close it.
	Image gocv.Mat
	// Cell marks the segmented cell in Image (0..255; edges are graded by
	// the resize). Training uses it to jitter the cell's colours while the
	// background stays neutral. All 255 when the spec does not segment.
	Cell []uint8
	// Fallback is set when no cell outline could be trusted: the whole crop
	// was used, unmasked; the classifier marks such an answer uncertain.
	Fallback bool
}

// Close frees the image.
func (in *Input) Close() error { return in.Image.Close() }

// PrepareInput turns a white-cell crop (8-bit BGR, as vision.CropCell
// returns it) into the model's input. It is the one implementation used by
// both `allscreen prepare` (training data) and Classify (the device).
func PrepareInput(crop gocv.Mat, spec InputSpec) (Input, error) {
	if err := spec.Check(); err != nil {
		return Input{}, fmt.Errorf("prepare input: %w", err)
	}
	if crop.Empty() || crop.Type() != gocv.MatTypeCV8UC3 {
		return Input{}, fmt.Errorf("prepare input: want a non-empty 8-bit 3-channel crop, got type %d, %dx%d", crop.Type(), crop.Cols(), crop.Rows())
	}
	if crop.Cols() < vision.MinSide || crop.Rows() < vision.MinSide {
		return Input{}, fmt.Errorf("prepare input: crop is %dx%d, smaller than %dx%d", crop.Cols(), crop.Rows(), vision.MinSide, vision.MinSide)
	}
	w, h := crop.Cols(), crop.Rows()
	frame := image.Rect(0, 0, w, h)
	var cell *vision.Mask
	fallback := false
	if spec.needsSegmentation() {
		masks, err := vision.SegmentCell(crop)
		if err != nil {
			return Input{}, fmt.Errorf("prepare input: %w", err)
		}
		cell = masks.Cell.CentralComponent()
		if cell == nil || cell.W != w || cell.H != h || float64(cell.Area()) < minCellShare*float64(w*h) {
			cell, fallback = nil, true
		}
	}
	if cell != nil && spec.Framing == FrameCell {
		frame = squareAround(maskBounds(cell), spec.Margin)
	}
	pix, err := framedPixels(crop, frame)
	if err != nil {
		return Input{}, fmt.Errorf("prepare input: %w", err)
	}
	side := frame.Dx()
	alpha := make([]uint8, side*side)
	if cell == nil {
		for i := range alpha {
			alpha[i] = 255
		}
	} else {
		for y := 0; y < side; y++ {
			sy := frame.Min.Y + y
			if sy < 0 || sy >= h {
				continue
			}
			for x := 0; x < side; x++ {
				sx := frame.Min.X + x
				if sx >= 0 && sx < w && cell.Pix[sy*w+sx] != 0 {
					alpha[y*side+x] = 255
				}
			}
		}
	}
	if spec.Colour == ColourLabStandard || spec.Colour == ColourGreyStandard {
		if err := standardiseLab(pix, alpha, side, frame.Dy(), spec.Colour == ColourGreyStandard); err != nil {
			return Input{}, fmt.Errorf("prepare input: %w", err)
		}
	}
	if cell != nil && spec.Masking == MaskCell {
		bg := [3]uint8{spec.Background[2], spec.Background[1], spec.Background[0]} // BGR
		for i, a := range alpha {
			if a == 0 {
				copy(pix[3*i:3*i+3], bg[:])
			}
		}
	}
	img, err := resizeSquare(pix, frame.Dx(), frame.Dy(), gocv.MatTypeCV8UC3, spec.Size)
	if err != nil {
		return Input{}, fmt.Errorf("prepare input: %w", err)
	}
	am, err := resizeSquare(alpha, side, side, gocv.MatTypeCV8U, spec.Size)
	if err != nil {
		img.Close()
		return Input{}, fmt.Errorf("prepare input: %w", err)
	}
	defer am.Close()
	return Input{Image: img, Cell: am.ToBytes(), Fallback: fallback}, nil
}

// standardiseLab rewrites, in place, the w x h BGR pixels where alpha is
// set so that their CIE Lab mean and standard deviation per channel are
// labStandard's (ColourLabStandard); with grey, L* only, a* and b* set to
// neutral (ColourGreyStandard). Pixels outside the cell are left.
func standardiseLab(pix, alpha []uint8, w, h int, grey bool) error {
	if len(pix) != 3*w*h || len(alpha) < w*h {
		return fmt.Errorf("standardise colours: %d bytes for %dx%d", len(pix), w, h)
	}
	lp, err := convertColour(pix, w, h, gocv.ColorBGRToLab)
	if err != nil {
		return err
	}
	var sum, sq [3]float64
	n := 0
	for i := 0; i < w*h; i++ {
		if alpha[i] == 0 {
			continue
		}
		n++
		for c := 0; c < 3; c++ {
			v := float64(lp[3*i+c])
			sum[c] += v
			sq[c] += v * v
		}
	}
	if n < 2 {
		return nil // nothing to measure: leave the colours
	}
	var gain, off [3]float64
	for c := 0; c < 3; c++ {
		mean := sum[c] / float64(n)
		sd := math.Sqrt(max(sq[c]/float64(n)-mean*mean, 0))
		gain[c] = labStandard.sd[c] / max(sd, 1) // a flat channel is shifted, not blown up
		off[c] = labStandard.mean[c] - gain[c]*mean
	}
	for i := 0; i < w*h; i++ {
		if alpha[i] == 0 {
			continue
		}
		for c := 0; c < 3; c++ {
			lp[3*i+c] = uint8(math.Round(min(max(gain[c]*float64(lp[3*i+c])+off[c], 0), 255)))
		}
		if grey {
			lp[3*i+1], lp[3*i+2] = 128, 128 // OpenCV's 8-bit a*, b* of a neutral grey
		}
	}
	out, err := convertColour(lp, w, h, gocv.ColorLabToBGR)
	if err != nil {
		return err
	}
	for i := 0; i < w*h; i++ {
		if alpha[i] != 0 {
			copy(pix[3*i:3*i+3], out[3*i:3*i+3])
		}
	}
	return nil
}

// convertColour converts w x h 3-channel 8-bit pixels with OpenCV's
// cvtColor and returns the converted bytes.
func convertColour(pix []uint8, w, h int, code gocv.ColorConversionCode) ([]uint8, error) {
	src, err := vision.NewMatCopy(h, w, gocv.MatTypeCV8UC3, pix)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst := gocv.NewMat()
	defer dst.Close()
	gocv.CvtColor(src, &dst, code)
	return dst.ToBytes(), nil
}

// framedPixels copies the frame out of the crop as BGR bytes; parts of the
// frame outside the crop replicate its border (they are masked anyway when
// the spec masks).
func framedPixels(crop gocv.Mat, frame image.Rectangle) ([]uint8, error) {
	if frame == image.Rect(0, 0, crop.Cols(), crop.Rows()) {
		return crop.ToBytes(), nil
	}
	m, err := vision.CropCell(crop, frame)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if m.Cols() != frame.Dx() || m.Rows() != frame.Dy() || m.Type() != gocv.MatTypeCV8UC3 {
		return nil, fmt.Errorf("framed crop is %dx%d type %d, want %dx%d", m.Cols(), m.Rows(), m.Type(), frame.Dx(), frame.Dy())
	}
	return m.ToBytes(), nil
}

// resizeSquare resizes w x h pixels to side x side with area interpolation
// (a downscale averages, so no stain detail aliases).
func resizeSquare(pix []uint8, w, h int, mt gocv.MatType, side int) (gocv.Mat, error) {
	src, err := vision.NewMatCopy(h, w, mt, pix)
	if err != nil {
		return gocv.Mat{}, err
	}
	defer src.Close()
	dst := gocv.NewMat()
	gocv.Resize(src, &dst, image.Pt(side, side), 0, 0, gocv.InterpolationArea)
	if dst.Cols() != side || dst.Rows() != side {
		dst.Close()
		return gocv.Mat{}, fmt.Errorf("resize gave %dx%d, want %dx%d", dst.Cols(), dst.Rows(), side, side)
	}
	return dst, nil
}

// squareAround returns the square centred on r whose side is margin times
// r's larger side.
func squareAround(r image.Rectangle, margin float64) image.Rectangle {
	side := int(math.Ceil(float64(max(r.Dx(), r.Dy())) * margin))
	side = max(side, 1)
	cx2, cy2 := r.Min.X+r.Max.X, r.Min.Y+r.Max.Y // twice the centre
	x0, y0 := (cx2-side)/2, (cy2-side)/2
	return image.Rect(x0, y0, x0+side, y0+side)
}

// maskBounds is the smallest rectangle holding every set pixel of m.
func maskBounds(m *vision.Mask) image.Rectangle {
	r := image.Rectangle{}
	for y := 0; y < m.H; y++ {
		row := m.Pix[y*m.W : (y+1)*m.W]
		for x, v := range row {
			if v != 0 {
				r = r.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return r
}
