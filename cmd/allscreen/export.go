package main

import (
	"context"
	"fmt"
	"os"

	"allscreen/screening"
)

func init() {
	register(command{name: "export", summary: "copy every stored result (CSV, JSON, images) to a folder, e.g. a USB stick", run: runExport})
}

func runExport(argv []string) error {
	fs := newFlags("export", "")
	state := fs.String("state", screening.DefaultStateDir, "the daemon's state `DIR`")
	out := fs.String("out", "", "`DIR` to write the export folder into (required)")
	noImages := fs.Bool("no-images", false, "leave out the field and cell images")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(args) > 0 || *out == "" {
		fs.Usage()
		return errUsage
	}
	ctx := context.Background()
	store, err := screening.OpenReadOnly(ctx, *state, screening.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	sum, err := store.Export(ctx, *out, !*noImages)
	if err != nil {
		return err
	}
	fmt.Printf("exported %d samples, %d fields, %d white cells and %d images to %s\n",
		sum.Samples, sum.Fields, sum.Cells, sum.Images, sum.Dir)
	if n := len(sum.MissingImages); n > 0 {
		fmt.Fprintf(os.Stderr, "allscreen export: %d images were missing from the device and are not in the export (listed in results.json)\n", n)
		return errSomeFailed
	}
	return nil
}
