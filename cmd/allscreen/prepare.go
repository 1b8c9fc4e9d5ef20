package main

import (
	"fmt"
	"os"

	"allscreen/model"
	"allscreen/vision"
)

func init() {
	register(command{name: "prepare", summary: "write model inputs (segmented, resized crops) for training", run: runPrepare})
}

func runPrepare(argv []string) error {
	fs := newFlags("prepare", "")
	images := fs.String("images", "", "folder of labelled images (`DIR`)")
	labels := fs.String("labels", "", "labels `CSV` with columns file and label (optional group); without it, each sub-folder of --images is a label")
	labelColumn := fs.String("label-column", "label", "the labels CSV column holding the label")
	out := fs.String("out", "", "output `DIR` (index.csv, spec.json and one PNG per model input)")
	fields := fs.Bool("fields", false, "the images are whole fields: find the white cells and prepare each")
	scaleBar := fs.Bool("scale-bar", false, "blank the bottom-right corner of each image first (bll-stages' scale bar, whose colour differs by class)")
	spec := model.DefaultInputSpec
	fs.IntVar(&spec.Size, "size", spec.Size, "input side in pixels")
	fs.StringVar(&spec.Masking, "masking", spec.Masking, "cell (neutral background outside the segmented cell) or none")
	fs.StringVar(&spec.Framing, "framing", spec.Framing, "cell (square around the segmented cell) or crop (the whole crop)")
	fs.Float64Var(&spec.Margin, "margin", spec.Margin, "with framing cell: square side as a multiple of the cell's larger side")
	rest, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *images == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	if err := spec.Check(); err != nil {
		return err
	}
	items, err := model.ReadLabelled(*images, *labels, *labelColumn)
	if err != nil {
		return err
	}
	opt := model.PrepareOptions{Spec: spec, Fields: *fields, BlankScaleBar: *scaleBar, Find: vision.DefaultFindOptions}
	res, err := model.PrepareSet(items, *out, opt, func(done, total int) {
		if done%50 == 0 || done == total {
			fmt.Fprintf(os.Stderr, "\rprepare: %d/%d images", done, total)
			if done == total {
				fmt.Fprintln(os.Stderr)
			}
		}
	})
	if err != nil {
		return err
	}
	fmt.Printf("prepared %d model inputs from %d images into %s (%d without a trusted cell outline, %d images failed, %d cells skipped)\n",
		res.Inputs, res.Images, *out, res.Fallbacks, len(res.Failed), len(res.SkippedCells))
	for _, f := range res.Failed {
		fmt.Fprintf(os.Stderr, "allscreen prepare: %s\n", f)
	}
	if len(res.Failed) > 0 {
		return errSomeFailed
	}
	return nil
}
