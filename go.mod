module allscreen

go 1.26

require (
	gocv.io/x/gocv v0.25.0
	golang.org/x/image v0.23.0
)
