package screening

import (
	"context"
	"errors"
	"fmt"
	"image"

	"allscreen/model"
	"allscreen/vision"

	"gocv.io/x/gocv"
)

// QualityGate judges a captured field before it is analysed. It returns ""
// for a field worth analysing, or the reason to reject it in words the
// technician acts on ("Refocus", "Too dark", "No stained cells"). An error
// means the gate itself failed, not that the field is bad.
type QualityGate func(field gocv.Mat) (reject string, err error)

// ErrBadFrame is wrapped by errors about a frame that cannot be analysed at
// all (empty, tiny, wrong type): a camera fault, not a field to reject.
var ErrBadFrame = errors.New("the camera gave an unusable frame")

// MinFrameSide is the shortest frame side analysed.
const MinFrameSide = 64

// MaxFramePixels is the largest frame analysed: 32 megapixels. The daemon's
// peak memory grows by about 5.9 MB per megapixel from about 108 MB
// (measured with allscreend --sim on one field: 249 MB at 24 MP, 484 MB at
// 64 MP, over the unit's MemoryMax of 400 MB), so 32 MP peaks near 300 MB.
// A microscope camera gives 5-12 MP.
const MaxFramePixels = 32_000_000

// ErrFrameTooLarge (wrapping ErrBadFrame) is a frame over MaxFramePixels:
// the camera is set to too high a resolution.
var ErrFrameTooLarge = fmt.Errorf("frame too large: set the camera to at most %d megapixels: %w", MaxFramePixels/1_000_000, ErrBadFrame)

// FrameJPEGQuality is the JPEG quality of stored field frames: a person
// reviewing a result sees the field as captured (752 KB for a 5 MP
// ALL-IDB1 field), at a fraction of a lossless PNG's size.
const FrameJPEGQuality = 92

// Stored crops are PNG (lossless) at most CropStoreSide pixels a side, area
// downscaled: the paper's 256x256 network input and above any model's input
// here, so a stored crop can be reviewed and classified again; the
// full-resolution crops of an ALL-IDB1 field averaged 208 KB each as PNG.
// zlib level 1 encodes faster than OpenCV's default 3 for files about 5%
// larger; its Huffman-only strategy (no string matching: stained cells
// repeat few strings) is faster again and smaller still (BenchmarkEncodeCrop
// on 16 ALL-IDB2 crops: 75 KB in 4.2-4.5 ms per crop against 90 KB in
// 5.0-5.2 ms with the default strategy, on a loaded machine). Flat drawn
// test crops go the other way.
const (
	CropStoreSide      = 256
	CropPNGCompression = 1
)

func encodeCrop(crop gocv.Mat) ([]byte, error) {
	w, h := crop.Cols(), crop.Rows()
	if side := max(w, h); side > CropStoreSide {
		small := gocv.NewMat()
		defer small.Close()
		gocv.Resize(crop, &small, image.Pt(max(1, w*CropStoreSide/side), max(1, h*CropStoreSide/side)), 0, 0, gocv.InterpolationArea)
		crop = small
	}
	return gocv.IMEncodeWithParams(gocv.PNGFileExt, crop, []int{gocv.IMWritePngCompression, CropPNGCompression,
		gocv.IMWritePngStrategy, gocv.IMWritePngStrategyHuffmanOnly})
}

// Analyzer runs the pipeline for one field: quality gate, white cells,
// crops, one batched classification.
type Analyzer struct {
	Gate QualityGate // nil: every field is analysed
	Find vision.FindOptions
	// FindCells replaces vision.FindCells (with Find) when set: tests pin
	// the cells a field holds.
	FindCells  func(field gocv.Mat) ([]vision.Cell, error)
	Classifier model.Classifier
	Rule       Rule // its BlastThreshold calls each cell
}

// FieldAnalysis is an analysed field, ready to store.
type FieldAnalysis struct {
	Width, Height int
	Frame         []byte // JPEG
	Accepted      bool
	Reject        string
	Cells         []CellRecord
}

// Analyze runs the pipeline on an 8-bit BGR frame (which it does not keep
// or close). It checks ctx between stages and returns ctx's error, having
// produced nothing, when it is cancelled.
func (a *Analyzer) Analyze(ctx context.Context, frame gocv.Mat) (*FieldAnalysis, error) {
	if err := checkFrame(frame); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := &FieldAnalysis{Width: frame.Cols(), Height: frame.Rows(), Accepted: true}
	// Encoding the 5 MP frame is a third of the work and needs nothing from
	// the analysis: do it on the other core meanwhile.
	type encoded struct {
		data []byte
		err  error
	}
	enc := make(chan encoded, 1)
	go func() {
		b, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, frame, []int{gocv.IMWriteJpegQuality, FrameJPEGQuality})
		enc <- encoded{b, err}
	}()
	err := a.analyze(ctx, frame, out)
	e := <-enc // the frame must not be released while the encoder reads it
	if err != nil {
		return nil, err
	}
	if e.err != nil || len(e.data) == 0 {
		return nil, fmt.Errorf("encode field frame as JPEG: %v", e.err)
	}
	out.Frame = e.data
	return out, ctx.Err()
}

func (a *Analyzer) analyze(ctx context.Context, frame gocv.Mat, out *FieldAnalysis) error {
	if a.Gate != nil {
		reason, err := a.Gate(frame)
		if err != nil {
			return fmt.Errorf("quality gate: %w", err)
		}
		if reason != "" {
			out.Accepted, out.Reject = false, reason
			return nil
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var cells []vision.Cell
	var err error
	if a.FindCells != nil {
		cells, err = a.FindCells(frame)
	} else {
		cells, err = vision.FindCells(frame, a.Find)
	}
	if err != nil {
		return fmt.Errorf("find white cells: %w", err)
	}
	if len(cells) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	crops := make([]gocv.Mat, 0, len(cells))
	defer func() {
		for _, c := range crops {
			c.Close()
		}
	}()
	for i, c := range cells {
		m, err := vision.CropCell(frame, c.Crop)
		if err != nil {
			return fmt.Errorf("crop white cell %d: %w", i+1, err)
		}
		crops = append(crops, m)
	}
	if a.Classifier == nil {
		return errors.New("no classifier loaded")
	}
	preds, err := a.Classifier.Classify(crops)
	if err != nil {
		return fmt.Errorf("classify %d white cells: %w", len(crops), err)
	}
	if len(preds) != len(crops) {
		return fmt.Errorf("classifier answered %d predictions for %d white cells", len(preds), len(crops))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	out.Cells = make([]CellRecord, len(cells))
	for i, c := range cells {
		png, err := encodeCrop(crops[i])
		if err != nil || len(png) == 0 {
			return fmt.Errorf("encode white cell %d as PNG: %v", i+1, err)
		}
		out.Cells[i] = CellRecord{Box: c.Box, Crop: c.Crop, Area: c.Area, CropImage: png, CropFormat: "png",
			Prediction: preds[i], Call: a.Rule.CallCell(preds[i])}
	}
	return nil
}

// checkFrame keeps unusable frames away from OpenCV, which would abort the
// process on them.
func checkFrame(frame gocv.Mat) error {
	if frame.Ptr() == nil || frame.Empty() {
		return fmt.Errorf("empty frame: %w", ErrBadFrame)
	}
	if frame.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("frame type %d, want 8-bit BGR: %w", frame.Type(), ErrBadFrame)
	}
	if frame.Cols() < MinFrameSide || frame.Rows() < MinFrameSide {
		return fmt.Errorf("frame is %dx%d, smaller than %dx%d: %w", frame.Cols(), frame.Rows(), MinFrameSide, MinFrameSide, ErrBadFrame)
	}
	if int64(frame.Cols())*int64(frame.Rows()) > MaxFramePixels {
		return fmt.Errorf("frame is %dx%d: %w", frame.Cols(), frame.Rows(), ErrFrameTooLarge)
	}
	return nil
}

// CellResult is one white cell of a field as the caller sees it.
type CellResult struct {
	Box        image.Rectangle
	Prediction model.Prediction
	Call       CellCall
}
