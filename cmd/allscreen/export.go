package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"allscreen/screening"
	"allscreen/screening/record"
)

func init() {
	register(command{name: "export", summary: "copy every stored result (CSV, JSON, images), or the signed reports (--reports), to a USB stick", run: runExport})
}

func runExport(argv []string) error {
	fs := newFlags("export", "")
	state := fs.String("state", screening.DefaultStateDir, "the daemon's state `DIR`")
	out := fs.String("out", "", "`DIR` to write the export folder into (required)")
	noImages := fs.Bool("no-images", false, "leave out the field and cell images")
	reports := fs.Bool("reports", false, "write the signed reports instead: a PDF and a FHIR R4 bundle per signed sample")
	sameDisk := fs.Bool("same-disk", false, "allow a target on the results' own disk (development only: that is no backup)")
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
	if !*sameDisk {
		if err := record.CheckTarget(*out, *state); err != nil {
			return err
		}
	}
	if *reports {
		sum, err := record.ExportSigned(ctx, store, *out, record.Options{Now: time.Now(), Device: screening.DeviceID()})
		if err != nil {
			return err
		}
		fmt.Printf("exported %d signed reports to %s\n", sum.Reports, sum.Dir)
		return nil
	}
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
