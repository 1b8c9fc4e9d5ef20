package model

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"allscreen/vision"

	"gocv.io/x/gocv"
)

// MaxBatch is the most crops sent through the network at once: a field's
// cells in one or two passes, with bounded memory.
const MaxBatch = 16

// MaxModelBytes bounds a model file (the paper's network is 193 MB).
const MaxModelBytes = 512 << 20

// ErrBadModel is wrapped by every error about a model that must not be used.
var ErrBadModel = errors.New("model unusable")

// Net is a loaded, verified model: a detection model and, optionally, a
// subtype model consulted for the cells the detection model calls blasts.
// It implements Classifier and is safe for concurrent use.
type Net struct {
	m       *Manifest
	dir     string
	mu      sync.Mutex // gocv's Net is not safe for concurrent use
	net     gocv.Net
	closed  bool
	pos     int
	subtype *Net
}

var _ Classifier = (*Net)(nil)

// Load reads a manifest, verifies the model file it names (size, sha256,
// ONNX structure, outputs) and loads it. Any mismatch is an error wrapping
// ErrBadModel that says what to do; nothing reaches OpenCV unverified.
func Load(manifestPath string) (*Net, error) {
	m, onnx, err := readVerified(manifestPath)
	if err != nil {
		return nil, err
	}
	n := &Net{m: m, dir: filepath.Dir(manifestPath), pos: m.PositiveIndex()}
	if err := n.open(onnx); err != nil {
		return nil, fmt.Errorf("model %s: %w", manifestPath, err)
	}
	if err := n.selfTest(); err != nil {
		n.Close()
		return nil, fmt.Errorf("model %s: %w: %w", manifestPath, ErrBadModel, err)
	}
	return n, nil
}

// LoadWithSubtype loads a detection model and a subtype model; Classify
// then names the subtype of every cell called a blast. An empty
// subtypeManifest loads the detection model alone.
func LoadWithSubtype(detectManifest, subtypeManifest string) (*Net, error) {
	d, err := Load(detectManifest)
	if err != nil {
		return nil, err
	}
	if d.m.Task != TaskDetection {
		d.Close()
		return nil, fmt.Errorf("model %s: task is %q, not %q: %w", detectManifest, d.m.Task, TaskDetection, ErrBadModel)
	}
	if subtypeManifest == "" {
		return d, nil
	}
	s, err := Load(subtypeManifest)
	if err != nil {
		d.Close()
		return nil, err
	}
	if s.m.Task != TaskSubtype {
		d.Close()
		s.Close()
		return nil, fmt.Errorf("model %s: task is %q, not %q: %w", subtypeManifest, s.m.Task, TaskSubtype, ErrBadModel)
	}
	d.subtype = s
	return d, nil
}

// readVerified reads and checks a manifest and the model bytes it names.
func readVerified(manifestPath string) (*Manifest, []byte, error) {
	fail := func(format string, a ...any) (*Manifest, []byte, error) {
		return nil, nil, fmt.Errorf("model %s: %s: %w", manifestPath, fmt.Sprintf(format, a...), ErrBadModel)
	}
	raw, err := readLimited(manifestPath, MaxManifestBytes)
	if err != nil {
		return fail("cannot read the manifest (%v); reinstall the model", err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return fail("%v; reinstall the model", err)
	}
	if m.Input.needsSegmentation() && m.SegmentationV != vision.CellSegmentationVersion {
		return fail("trained on cells segmented by %q, but this software segments by %q: its inputs would be unlike its training; install a model trained for this version",
			m.SegmentationV, vision.CellSegmentationVersion)
	}
	onnxPath := filepath.Join(filepath.Dir(manifestPath), m.ONNX)
	data, err := readLimited(onnxPath, MaxModelBytes)
	if err != nil {
		return fail("cannot read the model file (%v); reinstall the model", err)
	}
	if m.ONNXBytes > 0 && int64(len(data)) != m.ONNXBytes {
		return fail("model file %s is %d bytes, the manifest says %d: it is truncated or was replaced; reinstall the model", m.ONNX, len(data), m.ONNXBytes)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != m.ONNXSHA256 {
		return fail("model file %s does not match its manifest (sha256 %s, want %s): it is damaged or was replaced; reinstall the model", m.ONNX, got[:12], m.ONNXSHA256[:min(12, len(m.ONNXSHA256))])
	}
	g, err := parseONNX(data)
	if err != nil {
		return fail("%s: %v", m.ONNX, err)
	}
	if err := checkONNX(g, m); err != nil {
		return fail("%s: %v", m.ONNX, err)
	}
	return m, data, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d", path, st.Size(), limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

// open hands OpenCV a private copy of the verified bytes (OpenCV 4.6 reads
// ONNX from a path only), so the file it reads is the one that was checked.
func (n *Net) open(onnx []byte) error {
	tmp, err := os.CreateTemp("", "allscreen-model-*.onnx")
	if err != nil {
		return fmt.Errorf("stage model for OpenCV: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(onnx); err != nil {
		tmp.Close()
		return fmt.Errorf("stage model for OpenCV: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("stage model for OpenCV: %w", err)
	}
	if probeModels {
		if err := probeInChild(tmp.Name()); err != nil {
			return err
		}
	}
	n.net = gocv.ReadNet(tmp.Name(), "")
	if n.net.Empty() {
		n.net.Close()
		return fmt.Errorf("OpenCV could not load the model: %w", ErrBadModel)
	}
	return nil
}

// selfTest runs one neutral input through the network and checks the
// outputs have the shapes and ranges the manifest promises.
func (n *Net) selfTest() error {
	s := n.m.Input.Size
	pix := make([]uint8, 3*s*s)
	for i := range pix {
		pix[i] = 128
	}
	img, err := vision.NewMatCopy(s, s, gocv.MatTypeCV8UC3, pix)
	if err != nil {
		return err
	}
	defer img.Close()
	probs, _, err := n.forward([]gocv.Mat{img})
	if err != nil {
		return fmt.Errorf("self-test: %w", err)
	}
	sum := float32(0)
	for _, p := range probs[0] {
		sum += p
	}
	if math.Abs(float64(sum)-1) > 1e-3 {
		return fmt.Errorf("self-test: probabilities sum to %v, not 1 (is softmax in the graph?)", sum)
	}
	return nil
}

// Manifest returns the detection model's manifest (do not modify it).
func (n *Net) Manifest() *Manifest { return n.m }

// SubtypeManifest returns the subtype model's manifest, or nil.
func (n *Net) SubtypeManifest() *Manifest {
	if n.subtype == nil {
		return nil
	}
	return n.subtype.m
}

// Close frees the networks.
func (n *Net) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if n.subtype != nil {
		n.subtype.Close()
	}
	return n.net.Close()
}

// Classify prepares each crop as the manifest says (segmentation, neutral
// background, framing, resize) and classifies them in batches. A crop that
// cannot be prepared gets an uncertain Prediction with a Reason, not an
// error: one odd cell must not lose a field. The error is for the model
// failing as a whole.
func (n *Net) Classify(crops []gocv.Mat) ([]Prediction, error) {
	preds := make([]Prediction, len(crops))
	inputs := make([]Input, len(crops))
	defer func() {
		for i := range inputs {
			if inputs[i].Image.Ptr() != nil {
				inputs[i].Close()
			}
		}
	}()
	// Preparing a crop (its segmentation) is most of a field's work and
	// each crop is independent: one crop per CPU at a time.
	errs := make([]error, len(crops))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(crops)) {
		wg.Go(func() {
			for i := range next {
				inputs[i], errs[i] = PrepareInput(crops[i], n.m.Input)
			}
		})
	}
	for i := range crops {
		next <- i
	}
	close(next)
	wg.Wait()
	var ok []int
	for i, err := range errs {
		if err != nil {
			preds[i] = Prediction{Uncertain: true, Reason: "cell could not be prepared: " + err.Error()}
			continue
		}
		ok = append(ok, i)
	}
	imgs := make([]gocv.Mat, len(ok))
	for j, i := range ok {
		imgs[j] = inputs[i].Image
	}
	probs, feats, err := n.forward(imgs)
	if err != nil {
		return nil, err
	}
	var blasts []int
	for j, i := range ok {
		preds[i] = n.judge(probs[j], feats[j], inputs[i].Fallback)
		if n.pos >= 0 && preds[i].Blast >= float32(*n.m.Operating.BlastThreshold) {
			blasts = append(blasts, i)
		}
	}
	if n.subtype != nil && len(blasts) > 0 {
		if err := n.classifySubtype(crops, inputs, blasts, preds); err != nil {
			return nil, err
		}
	}
	return preds, nil
}

// judge turns one output into a Prediction under the operating point.
func (n *Net) judge(probs, feat []float32, fallback bool) Prediction {
	p := Prediction{Probs: probs}
	op := n.m.Operating
	if n.pos >= 0 {
		p.Blast = probs[n.pos]
		if p.Blast >= float32(*op.UncertainLow) && p.Blast <= float32(*op.UncertainHigh) {
			p.Uncertain, p.Reason = true, "low confidence"
		}
	}
	if op.OOD != nil && feat != nil {
		p.OODDistance = float32(op.OOD.Distance(feat))
		if float64(p.OODDistance) > op.OOD.Threshold {
			p.Uncertain, p.OutOfDistribution, p.Reason = true, true, "cell unlike the training data"
		}
	}
	if fallback {
		p.Uncertain, p.NoOutline, p.Reason = true, true, "cell outline not found"
	}
	return p
}

func (n *Net) classifySubtype(crops []gocv.Mat, inputs []Input, blasts []int, preds []Prediction) error {
	s := n.subtype
	same := s.m.Input == n.m.Input
	imgs := make([]gocv.Mat, 0, len(blasts))
	var own []Input
	defer func() {
		for i := range own {
			own[i].Close()
		}
	}()
	var idx []int
	for _, i := range blasts {
		if same {
			imgs = append(imgs, inputs[i].Image)
			idx = append(idx, i)
			continue
		}
		in, err := PrepareInput(crops[i], s.m.Input)
		if err != nil {
			continue // the detection answer stands; no subtype for this cell
		}
		own = append(own, in)
		imgs = append(imgs, in.Image)
		idx = append(idx, i)
	}
	probs, _, err := s.forward(imgs)
	if err != nil {
		return fmt.Errorf("subtype model: %w", err)
	}
	for j, i := range idx {
		best := 0
		for k, v := range probs[j] {
			if v > probs[j][best] {
				best = k
			}
		}
		preds[i].Subtype = s.m.Labels[best]
		preds[i].SubtypeProb = probs[j][best]
		preds[i].SubtypeUncertain = float64(probs[j][best]) < *s.m.Operating.MinConfidence
	}
	return nil
}

// RunPrepared runs prepared inputs (Size x Size 8-bit BGR, as PrepareInput
// makes them) through the network: per input, the probabilities and the
// feature vector (nil without an OOD output). Evaluation and the parity
// test use it to measure exactly the device's path from prepared inputs.
func (n *Net) RunPrepared(imgs []gocv.Mat) (probs, feats [][]float32, err error) {
	s := n.m.Input.Size
	for i, m := range imgs {
		if m.Empty() || m.Type() != gocv.MatTypeCV8UC3 || m.Cols() != s || m.Rows() != s {
			return nil, nil, fmt.Errorf("prepared input %d is %dx%d type %d, want %dx%d 8-bit BGR", i, m.Cols(), m.Rows(), m.Type(), s, s)
		}
	}
	return n.forward(imgs)
}

// forward runs already prepared inputs in batches of MaxBatch.
func (n *Net) forward(imgs []gocv.Mat) (probs, feats [][]float32, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, nil, errors.New("model is closed")
	}
	spec := n.m.Input
	outs := []string{n.m.OutputName}
	if n.m.Operating.OOD != nil {
		outs = append(outs, n.m.Operating.OOD.Output)
	}
	for start := 0; start < len(imgs); start += MaxBatch {
		batch := imgs[start:min(start+MaxBatch, len(imgs))]
		blob := gocv.NewMat()
		gocv.BlobFromImages(batch, &blob, spec.Scale, image.Pt(spec.Size, spec.Size), gocv.NewScalar(0, 0, 0, 0),
			spec.ChannelOrder == "RGB", false, gocv.MatTypeCV32F)
		n.net.SetInput(blob, n.m.InputName)
		res := n.net.ForwardLayers(outs)
		blob.Close()
		p, err := readOutput(res[0], len(batch), len(n.m.Labels))
		var f [][]float32
		if err == nil && len(res) > 1 {
			f, err = readOutput(res[1], len(batch), len(n.m.Operating.OOD.Variance))
		}
		for _, r := range res {
			r.Close()
		}
		if err != nil {
			return nil, nil, err
		}
		probs = append(probs, p...)
		if f == nil {
			f = make([][]float32, len(batch))
		}
		feats = append(feats, f...)
	}
	return probs, feats, nil
}

// readOutput copies an N x C float output, checking its shape and values.
func readOutput(m gocv.Mat, n, c int) ([][]float32, error) {
	if m.Empty() || m.Type() != gocv.MatTypeCV32F {
		return nil, fmt.Errorf("network output is empty or not float: %w", ErrBadModel)
	}
	total := 1
	for _, d := range m.Size() {
		total *= d
	}
	if sz := m.Size(); len(sz) < 2 || sz[0] != n || total != n*c {
		return nil, fmt.Errorf("network output has shape %v, want %d x %d: %w", m.Size(), n, c, ErrBadModel)
	}
	flat, err := m.DataPtrFloat32()
	if err != nil {
		return nil, err
	}
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, c)
		copy(out[i], flat[i*c:(i+1)*c])
		for _, v := range out[i] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("network output is not finite: %w", ErrBadModel)
			}
		}
	}
	return out, nil
}
