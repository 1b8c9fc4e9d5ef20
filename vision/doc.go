// Package vision owns everything from an image to the white cells in it:
// safe image loading, the paper's Gaussian blur and k-means colour
// segmentation, the choice of the nucleus cluster without ground truth,
// segment scores (SSIM, Dice, IoU), k tuning (the paper's Algorithm 1),
// white-cell finding in whole fields, square crops and the field quality gate.
//
// It knows nothing of devices, models or storage. Every gocv.Mat it returns
// is owned by the caller, who must Close it. OpenCV aborts the process on any
// exception, so every input is validated in Go before it reaches OpenCV.
package vision
