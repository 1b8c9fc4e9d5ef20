package vision

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gocv.io/x/gocv"
)

// Degraded copies of real fields: what a cheap or badly set-up camera does
// to a field, made from fields whose truth is known, so that cell finding
// and the quality gate can be measured on them (`allscreen camera-eval`).
// Lengths that depend on the cells (blur) are in red-cell radii R,
// measured on the original field, so one degradation means the same loss
// of detail at any magnification.

// Degradation is one way to spoil a field.
type Degradation struct {
	Name string // short, for tables and JSON
	What string // in words
	// Want are the quality-gate verdicts that are the right reason to
	// refuse this copy, when finding fails on it.
	Want  []QualityIssue
	apply func(src gocv.Mat, r float64) (gocv.Mat, error)
	// scale maps a point of the original to the copy (nil: identity).
	scale func(w, h int) (sx, sy float64)
}

// Apply makes the degraded copy of field, whose red-cell radius is r
// field pixels, and returns it with the factors that map the original's
// coordinates to the copy's.
func (d Degradation) Apply(field gocv.Mat, r float64) (gocv.Mat, float64, float64, error) {
	if err := checkBGR(field); err != nil {
		return gocv.NewMat(), 0, 0, err
	}
	out, err := d.apply(field, r)
	if err != nil {
		return out, 0, 0, fmt.Errorf("%s: %w", d.Name, err)
	}
	sx, sy := 1.0, 1.0
	if d.scale != nil {
		sx, sy = d.scale(field.Cols(), field.Rows())
	}
	return out, sx, sy, nil
}

// Degradations lists the copies camera-eval makes, in table order.
func Degradations() []Degradation {
	exposure := []QualityIssue{QualityTooDark, QualityTooBright}
	return []Degradation{
		{Name: "vignetting", What: "light falling to 35% in the corners (1 - 0.65 (r/r_corner)^2)", Want: exposure,
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return vignette(src, 0.65) }},
		{Name: "blur-0.15R", What: "Gaussian blur, sigma 0.15 red-cell radii", Want: []QualityIssue{QualityBlurred},
			apply: func(src gocv.Mat, r float64) (gocv.Mat, error) { return gaussian(src, 0.15*r) }},
		{Name: "blur-0.3R", What: "Gaussian blur, sigma 0.3 red-cell radii", Want: []QualityIssue{QualityBlurred},
			apply: func(src gocv.Mat, r float64) (gocv.Mat, error) { return gaussian(src, 0.3*r) }},
		{Name: "blur-0.6R", What: "Gaussian blur, sigma 0.6 red-cell radii", Want: []QualityIssue{QualityBlurred},
			apply: func(src gocv.Mat, r float64) (gocv.Mat, error) { return gaussian(src, 0.6*r) }},
		{Name: "jpeg-40", What: "JPEG at quality 40", Want: nil,
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return jpegCopy(src, 40) }},
		{Name: "gamma-0.6", What: "gamma 0.6 (v' = 255 (v/255)^0.6: lighter, flatter)", Want: exposure,
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return gammaCopy(src, 0.6) }},
		{Name: "gamma-1.6", What: "gamma 1.6 (darker, more contrast)", Want: exposure,
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return gammaCopy(src, 1.6) }},
		{Name: "wb-warm", What: "white balance: red x1.15, blue x0.75", Want: nil,
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return channelGain(src, [3]float64{0.75, 1, 1.15}) }},
		{Name: "wb-cool", What: "white balance: red x0.75, blue x1.15", Want: nil,
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return channelGain(src, [3]float64{1.15, 1, 0.75}) }},
		{Name: "wb-green", What: "white balance: red and blue x0.8", Want: nil,
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return channelGain(src, [3]float64{0.8, 1, 0.8}) }},
		{Name: "down-640", What: "downscaled to 640 pixels on the long side (a VGA camera; unchanged when already that small)", Want: nil,
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return downscaleTo(src, 640), nil },
			scale: func(w, h int) (float64, float64) {
				f := min(1, 640/float64(max(w, h)))
				return f, f
			}},
		{Name: "up-2x", What: "upscaled 2x (bilinear)", Want: nil,
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) {
				return resizeBy(src, 2, gocv.InterpolationLinear), nil
			},
			scale: func(int, int) (float64, float64) { return 2, 2 }},
		{Name: "half-magnification", What: "half the magnification: the field at half size, mirrored to fill the frame (recall on the original quarter)",
			Want:  []QualityIssue{QualityMagnification},
			apply: halfMagnification,
			scale: func(int, int) (float64, float64) { return 0.5, 0.5 }},
		{Name: "dark-30", What: "light at 30%", Want: []QualityIssue{QualityTooDark},
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return channelGain(src, [3]float64{0.3, 0.3, 0.3}) }},
		{Name: "dark-15", What: "light at 15%", Want: []QualityIssue{QualityTooDark},
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return channelGain(src, [3]float64{0.15, 0.15, 0.15}) }},
		{Name: "bright-2.2", What: "light x2.2 (burnt out)", Want: []QualityIssue{QualityTooBright},
			apply: func(src gocv.Mat, _ float64) (gocv.Mat, error) { return channelGain(src, [3]float64{2.2, 2.2, 2.2}) }},
	}
}

// mapPixels returns a copy of an 8-bit BGR image with every pixel passed
// through f (x, y and the pixel's BGR, in place).
func mapPixels(src gocv.Mat, f func(x, y int, px []byte)) (gocv.Mat, error) {
	b := src.ToBytes()
	w := src.Cols()
	for p := 0; p+2 < len(b); p += 3 {
		i := p / 3
		f(i%w, i/w, b[p:p+3])
	}
	return NewMatCopy(src.Rows(), w, gocv.MatTypeCV8UC3, b)
}

func clamp8(v float64) byte { return byte(max(0, min(255, math.Round(v)))) }

func channelGain(src gocv.Mat, gain [3]float64) (gocv.Mat, error) {
	var lut [3][256]byte
	for c := range 3 {
		for v := range 256 {
			lut[c][v] = clamp8(float64(v) * gain[c])
		}
	}
	return mapPixels(src, func(_, _ int, px []byte) {
		for c := range 3 {
			px[c] = lut[c][px[c]]
		}
	})
}

func gammaCopy(src gocv.Mat, g float64) (gocv.Mat, error) {
	var lut [256]byte
	for v := range 256 {
		lut[v] = clamp8(255 * math.Pow(float64(v)/255, g))
	}
	return mapPixels(src, func(_, _ int, px []byte) {
		for c := range 3 {
			px[c] = lut[px[c]]
		}
	})
}

func vignette(src gocv.Mat, depth float64) (gocv.Mat, error) {
	cx, cy := float64(src.Cols()-1)/2, float64(src.Rows()-1)/2
	corner := cx*cx + cy*cy
	return mapPixels(src, func(x, y int, px []byte) {
		dx, dy := float64(x)-cx, float64(y)-cy
		g := 1 - depth*(dx*dx+dy*dy)/corner
		for c := range 3 {
			px[c] = clamp8(float64(px[c]) * g)
		}
	})
}

func gaussian(src gocv.Mat, sigma float64) (gocv.Mat, error) {
	out := gocv.NewMat()
	gocv.GaussianBlur(src, &out, image.Pt(0, 0), sigma, sigma, gocv.BorderReflect101)
	return out, nil
}

func jpegCopy(src gocv.Mat, quality int) (gocv.Mat, error) {
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, quality})
	if err != nil {
		return gocv.NewMat(), err
	}
	out, err := gocv.IMDecode(buf, gocv.IMReadColor)
	if err != nil {
		return out, err
	}
	if out.Empty() {
		return out, fmt.Errorf("JPEG copy did not decode")
	}
	return out, nil
}

func resizeBy(src gocv.Mat, f float64, interp gocv.InterpolationFlags) gocv.Mat {
	out := gocv.NewMat()
	gocv.Resize(src, &out, image.Pt(max(1, int(math.Round(float64(src.Cols())*f))), max(1, int(math.Round(float64(src.Rows())*f)))), 0, 0, interp)
	return out
}

// halfMagnification shows four times the area at the same pixel count:
// the field at half size in the top-left quarter, mirrored into the rest.
func halfMagnification(src gocv.Mat, _ float64) (gocv.Mat, error) {
	half := resizeBy(src, 0.5, gocv.InterpolationArea)
	defer half.Close()
	out := gocv.NewMat()
	gocv.CopyMakeBorder(half, &out, 0, src.Rows()-half.Rows(), 0, src.Cols()-half.Cols(), gocv.BorderReflect, color.RGBA{})
	return out, nil
}
