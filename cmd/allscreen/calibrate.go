package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"allscreen/model"
	"allscreen/screening"
	"allscreen/vision"

	"gocv.io/x/gocv"
)

func init() {
	register(command{name: "calibrate", summary: "measure the model on a laboratory's own normal smears; write the calibration file allscreend loads", run: runCalibrate})
}

func runCalibrate(argv []string) error {
	fs := newFlags("calibrate", "DIR...")
	manifest := fs.String("model", "/usr/share/allscreen/model/detect.json", "the detection model's manifest `JSON` (the one allscreend loads)")
	lab := fs.String("lab", "", "the laboratory's name, recorded in the file")
	fields := fs.Bool("fields", false, "the images are whole fields (as the appliance captures them): find and judge every white cell")
	out := fs.String("out", "", "write the calibration to this `FILE` (config: model.calibration)")
	check := fs.String("check", "", "instead of calibrating, judge DIR's normal cells with this calibration `FILE` (use smears it was not made from)")
	rest, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(rest) == 0 || (*check == "") == (*out == "" || *lab == "") {
		fs.Usage()
		return errUsage
	}
	n, err := model.Load(*manifest)
	if err != nil {
		return err
	}
	defer n.Close()
	var checked *model.Calibration
	if *check != "" {
		if checked, err = model.ReadCalibration(*check); err != nil {
			return err
		}
		if err := n.ApplyCalibration(checked); err != nil {
			return err
		}
	}
	paths, err := imageFiles(rest)
	if err != nil {
		return err
	}
	var cells []model.CalibrationCell
	var preds []model.Prediction
	failed := 0
	for i, p := range paths {
		ps, err := judgeImage(n, p, *fields)
		if err != nil {
			fmt.Fprintf(os.Stderr, "calibrate: %s: %v (left out)\n", p, err)
			failed++
			continue
		}
		for _, pr := range ps {
			if pr.Probs == nil {
				continue
			}
			preds = append(preds, pr)
			cells = append(cells, model.CalibrationCell{PBlast: pr.Blast, Distance: pr.OODDistance, Fallback: pr.NoOutline})
		}
		if (i+1)%100 == 0 {
			fmt.Fprintf(os.Stderr, "calibrate: %d/%d images, %d cells\n", i+1, len(paths), len(cells))
		}
	}
	if checked != nil {
		return printCheck(n, checked, preds, len(paths)-failed, failed)
	}
	if len(cells) < model.MinCalibrationCells {
		return fmt.Errorf("calibrate: %d normal white cells in %d images (%d unreadable); at least %d are needed to measure a false-positive rate near 1%%: capture more fields of normal smears",
			len(cells), len(paths)-failed, failed, model.MinCalibrationCells)
	}
	m := n.Manifest()
	c, err := model.Calibrate(m.Operating, m.ONNXSHA256, *lab, cells)
	if err != nil {
		return err
	}
	c.Created = time.Now().UTC().Format(time.RFC3339)
	raw, _ := json.MarshalIndent(c, "", " ")
	if err := model.WriteFileAtomic(*out, append(raw, '\n')); err != nil {
		return err
	}
	modelOOD := "none"
	if m.Operating.OOD != nil {
		modelOOD = fmt.Sprintf("%.3f", m.Operating.OOD.Threshold)
	}
	modelFPR := "not stated"
	if r, err := screening.RuleFor(m.Operating, screening.DefaultRuleConfig); err == nil {
		modelFPR = fmt.Sprintf("%.3f", r.CellFalsePositiveRate)
	}
	fmt.Printf("%s: %d normal white cells from %d images (%d unreadable)\n", *lab, c.NormalCells, len(paths)-failed, failed)
	fmt.Printf("  out-of-distribution threshold: model %s, calibrated %.3f (%.0f%% of these cells within it)\n", modelOOD, c.OODThreshold, 100*c.OODQuantile)
	fmt.Printf("  blast threshold: model %.3f, calibrated %.3f (%.0f%% of these cells at or above it, at most)\n", c.ModelBlastThreshold, c.BlastThreshold, 100*model.CalibrationFalsePositives)
	fmt.Printf("  uncertain after calibration: %.3f of the cells\n", c.UncertainShare)
	fmt.Printf("  normal cells called blast: %.3f (95%% CI %.3f-%.3f, %d confident cells); the model's own validation rate: %s\n",
		c.CellFalsePositiveRate, c.CellFalsePositiveRateCI[0], c.CellFalsePositiveRateCI[1], c.ConfidentCells, modelFPR)
	// the rate is at most CalibrationFalsePositives by construction; what can go wrong is where the threshold had to go,
	// and how many cells the model is unsure of
	if c.BlastThreshold > max(c.ModelBlastThreshold, 0.9) {
		fmt.Printf("  WARNING: this laboratory's normal cells score like blasts (threshold moved from %.3f to %.3f): blasts will be missed. Check stain and focus, then calibrate again.\n", c.ModelBlastThreshold, c.BlastThreshold)
	}
	if c.UncertainShare > screening.DefaultRuleConfig.MaxUncertainFraction {
		fmt.Printf("  WARNING: the model is unsure of %.0f%% of these cells; above %.0f%% every sample is sent for review. Check stain, focus and magnification.\n", 100*c.UncertainShare, 100*screening.DefaultRuleConfig.MaxUncertainFraction)
	}
	fmt.Printf("wrote %s; set model.calibration to it in allscreend's configuration\n", *out)
	return nil
}

// printCheck reports how a calibrated model judges normal cells it was not
// calibrated on: the share called blast and the share it is unsure of
// (preds come from the model with the calibration applied).
func printCheck(n *model.Net, c *model.Calibration, preds []model.Prediction, images, failed int) error {
	if len(preds) == 0 {
		return fmt.Errorf("calibrate --check: no white cells in %d images", images)
	}
	th := *n.Manifest().Operating.BlastThreshold
	called, unc := 0, 0
	for _, p := range preds {
		if p.Uncertain {
			unc++
		} else if float64(p.Blast) >= th {
			called++
		}
	}
	conf := len(preds) - unc
	ci := model.Wilson(called, max(1, conf))
	fmt.Printf("%s calibration checked on %d normal white cells from %d images (%d unreadable)\n", c.Laboratory, len(preds), images, failed)
	fmt.Printf("  called blast: %d of %d confident cells, %.3f (95%% CI %.3f-%.3f); calibrated rate %.3f\n", called, conf,
		float64(called)/float64(max(1, conf)), ci[0], ci[1], c.CellFalsePositiveRate)
	fmt.Printf("  uncertain: %.3f of the cells (at calibration %.3f)\n", float64(unc)/float64(len(preds)), c.UncertainShare)
	if ci[0] > c.CellFalsePositiveRate || float64(unc)/float64(len(preds)) > c.UncertainShare+0.05 {
		fmt.Printf("  WARNING: these smears do not match the calibration (more blast calls or more uncertain cells than measured): check stain, focus and magnification, or calibrate again on more smears\n")
	}
	return nil
}

// judgeImage classifies one image: a single cell, or every white cell
// FindCells finds in a field.
func judgeImage(n *model.Net, path string, fields bool) ([]model.Prediction, error) {
	img, err := vision.LoadImage(path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if !fields {
		return n.Classify([]gocv.Mat{img})
	}
	return classifyFieldCells(n, img)
}

// classifyFieldCells finds a field's white cells and classifies them.
func classifyFieldCells(n *model.Net, img gocv.Mat) ([]model.Prediction, error) {
	found, err := vision.FindCells(img, vision.DefaultFindOptions)
	if err != nil {
		return nil, err
	}
	var crops []gocv.Mat
	defer func() {
		for _, c := range crops {
			c.Close()
		}
	}()
	for _, c := range found {
		crop, err := vision.CropCell(img, c.Crop)
		if err != nil {
			continue
		}
		crops = append(crops, crop)
	}
	if len(crops) == 0 {
		return nil, nil
	}
	return n.Classify(crops)
}

// imageFiles lists the image files under the given folders (recursively)
// or files, sorted.
func imageFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && model.IsImageFile(p) {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no images in %s", strings.Join(args, ", "))
	}
	slices.Sort(out)
	return out, nil
}
