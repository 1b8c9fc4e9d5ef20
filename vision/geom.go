package vision

import (
	"image"
	"image/color"
)

var colorBlack = color.RGBA{A: 255}

func pt(x, y int) image.Point { return image.Pt(x, y) }
