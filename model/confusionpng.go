package model

import (
	"fmt"
	"image"
	"image/color"

	"gocv.io/x/gocv"
)

// WriteConfusionPNG draws a confusion matrix as the paper's Figure 8 does:
// rows true labels, columns predicted, each cell shaded by its share of the
// row and labelled with its count.
func WriteConfusionPNG(r Report, title, path string) error {
	k := len(r.Labels)
	if k == 0 || len(r.Confusion) != k {
		return fmt.Errorf("confusion matrix: no labels")
	}
	cell, left, top := 110, 170, 90
	w, h := max(left+k*cell+20, 10+9*len(title)), top+k*cell+60
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(255, 255, 255, 0), h, w, gocv.MatTypeCV8UC3)
	defer img.Close()
	black := color.RGBA{A: 255}
	font := gocv.FontHersheySimplex
	gocv.PutText(&img, title, image.Pt(10, 24), font, 0.5, black, 1)
	gocv.PutText(&img, "predicted", image.Pt(left+k*cell/2-40, top-40), font, 0.5, black, 1)
	gocv.PutText(&img, "true", image.Pt(10, top+k*cell/2), font, 0.5, black, 1)
	for j, l := range r.Labels {
		gocv.PutText(&img, l, image.Pt(left+j*cell+8, top-12), font, 0.45, black, 1)
	}
	for i, l := range r.Labels {
		gocv.PutText(&img, l, image.Pt(60, top+i*cell+cell/2+5), font, 0.45, black, 1)
		row := 0
		for _, v := range r.Confusion[i] {
			row += v
		}
		for j, v := range r.Confusion[i] {
			share := ratio(v, row)
			shade := uint8(255 - 200*share)
			rect := image.Rect(left+j*cell, top+i*cell, left+(j+1)*cell, top+(i+1)*cell)
			gocv.Rectangle(&img, rect, color.RGBA{R: shade, G: shade, B: 255, A: 255}, -1)
			gocv.Rectangle(&img, rect, color.RGBA{R: 120, G: 120, B: 120, A: 255}, 1)
			txt := color.RGBA{A: 255}
			if share > 0.6 {
				txt = color.RGBA{R: 255, G: 255, B: 255, A: 255}
			}
			gocv.PutText(&img, fmt.Sprint(v), image.Pt(rect.Min.X+cell/2-18, rect.Min.Y+cell/2+2), font, 0.7, txt, 2)
			gocv.PutText(&img, fmt.Sprintf("%.0f%%", 100*share), image.Pt(rect.Min.X+cell/2-16, rect.Min.Y+cell/2+24), font, 0.4, txt, 1)
		}
	}
	gocv.PutText(&img, fmt.Sprintf("accuracy %.3f (95%% CI %.3f-%.3f), n = %d", r.Accuracy, r.AccuracyCI[0], r.AccuracyCI[1], r.N),
		image.Pt(10, h-20), font, 0.45, black, 1)
	buf, err := gocv.IMEncode(gocv.PNGFileExt, img)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, buf)
}
