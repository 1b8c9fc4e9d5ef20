package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"allscreen/screening"
)

func init() {
	register(command{name: "results", summary: "list the stored samples and their verdicts", run: runResults})
}

func runResults(argv []string) error {
	fs := newFlags("results", "")
	state := fs.String("state", screening.DefaultStateDir, "the daemon's state `DIR`")
	asJSON := fs.Bool("json", false, "print a JSON array of samples")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		fs.Usage()
		return errUsage
	}
	return listResults(context.Background(), os.Stdout, os.Stderr, *state, *asJSON)
}

func listResults(ctx context.Context, out, notes io.Writer, state string, asJSON bool) error {
	store, err := screening.OpenReadOnly(ctx, state, screening.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	samples, err := store.Samples(ctx)
	if err != nil {
		return err
	}
	events, err := store.Events(ctx)
	if err != nil {
		return err
	}
	for _, e := range events {
		fmt.Fprintf(notes, "note (%s): %s\n", e.At.Local().Format("2006-01-02 15:04"), e.Message)
	}
	if asJSON {
		if samples == nil {
			samples = []screening.SampleSummary{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(samples)
	}
	if len(samples) == 0 {
		fmt.Fprintln(out, "no samples stored yet")
		return nil
	}
	reviews, err := store.ReviewStates(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SAMPLE\tOPENED\tFIELDS\tWHITE CELLS\tBLASTS\tUNSURE\tVERDICT\tREVIEWED")
	for _, s := range samples {
		verdict := s.Verdict
		if s.Research {
			verdict = "RESEARCH: " + verdict
		}
		reviewed := "-"
		switch r := reviews[s.ID]; {
		case r.Signed:
			reviewed = "signed: " + r.Headline
		case r.Version > 0:
			reviewed = "draft"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%d\t%s\t%s\n", s.Code, s.OpenedAt.Local().Format(time.DateTime),
			s.AcceptedFields, s.Fields, s.Tally.WhiteCells, s.Tally.Blasts, s.Tally.Uncertain, verdict, reviewed)
	}
	return tw.Flush()
}
