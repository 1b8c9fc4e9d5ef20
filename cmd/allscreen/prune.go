package main

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"slices"
	"time"

	"allscreen/screening"
)

func init() {
	register(command{name: "prune", summary: "free space: remove the images of old samples that are signed and exported", run: runPrune})
}

func runPrune(argv []string) error {
	fs := newFlags("prune", "--before DATE [--exported-in DIR]")
	state := fs.String("state", screening.DefaultStateDir, "the daemon's state `DIR`")
	before := fs.String("before", "", "prune samples closed before this `DATE` (YYYY-MM-DD, the device's clock; required)")
	exportedIn := fs.String("exported-in", "", "the USB stick (`DIR`) holding allscreen export folders: a sample's every image must be there, byte for byte")
	force := fs.Bool("force", false, "also prune samples that are not signed or not exported (their images are then gone for good)")
	dryRun := fs.Bool("dry-run", false, "say what would be removed; remove nothing")
	by := fs.String("by", "", "who prunes, for the audit trail (default: the login name)")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	date, derr := time.ParseInLocation(time.DateOnly, *before, time.Local)
	if len(args) > 0 || *before == "" || derr != nil {
		if derr != nil && *before != "" {
			fmt.Fprintf(os.Stderr, "allscreen prune: --before %q is not YYYY-MM-DD\n", *before)
		}
		fs.Usage()
		return errUsage
	}
	if *by == "" {
		*by = loginName()
	}
	ctx := context.Background()
	store, err := screening.OpenExisting(ctx, *state, screening.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	sum, err := store.Prune(ctx, screening.PruneOptions{Before: date, ExportedIn: *exportedIn, Force: *force, DryRun: *dryRun, By: *by})
	if err != nil {
		return err
	}
	verb := "pruned"
	if *dryRun {
		verb = "would prune"
	}
	fmt.Printf("%s %d samples: %d images, %.1f MB\n", verb, len(sum.Samples), sum.Images, float64(sum.Bytes)/1e6)
	reasons := make([]string, 0, len(sum.Kept))
	for r := range sum.Kept {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		fmt.Printf("  kept %d: %s\n", sum.Kept[r], r)
	}
	return nil
}

// loginName is who runs the command: the person behind sudo, else the user.
func loginName() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}
