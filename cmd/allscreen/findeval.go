package main

import (
	"encoding/json"
	"fmt"
	"os"

	"allscreen/internal/realdata"
	"allscreen/vision"
)

func init() {
	register(command{name: "find-eval", summary: "measure white-cell finding on ALL-IDB1 fields against their truth", run: runFindEval})
}

type findEvalJSON struct {
	Data    string               `json:"data"`
	Groups  []vision.FieldGroup  `json:"groups"`
	Fields  []vision.FieldResult `json:"fields"`
	Options vision.FindOptions   `json:"options"`
	// Baseline is the plain k=3 method on the masked fields (--baseline).
	Baseline []vision.BaselineResult `json:"baseline,omitempty"`
}

func runFindEval(argv []string) error {
	fs := newFlags("find-eval", "")
	data := fs.String("data", "", "data folder holding allidb1/ (default: $"+realdata.EnvVar+" or ../shared/data)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of tables")
	fit := fs.Bool("fit-smudge", false, "fit the smudge-cell model on the tuning fields and print it as Go, with its leave-one-field-out check")
	baseline := fs.Bool("baseline", false, "also score the plain k=3 baseline on the fields with white-cell masks")
	report := fs.String("report", "", "write the markdown report (docs/fields.md) to `FILE`; implies --baseline")
	readme := fs.String("readme", "", "with --report, also fill the generated part of `README`'s fields section")
	bench := fs.String("bench", "", "with --report, include the `go test -bench` results in FILE")
	var boxes multiFlag
	fs.Var(&boxes, "boxes", "measure on the field set in `DIR` (a folder with boxes.csv) instead of ALL-IDB1; repeatable")
	draw := fs.String("draw", "", "with --boxes, draw every field's truth and detections into `DIR`")
	var labelled multiFlag
	fs.Var(&labelled, "labelled", "measure what can be checked on the fields in `DIR` (labels.csv: file,label; every field holds a white cell): the gate's refusals and the fields with any cell found; repeatable")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		fs.Usage()
		return errUsage
	}
	if (len(boxes) > 0 || len(labelled) > 0) && *report == "" {
		if len(boxes) > 0 {
			if _, err := evalBoxSets(boxes, *asJSON, *draw, vision.DefaultFindOptions); err != nil {
				return err
			}
		}
		sets, err := evalLabelledSets(labelled, *asJSON, vision.DefaultFindOptions)
		if err != nil {
			return err
		}
		if *asJSON && len(sets) > 0 {
			return json.NewEncoder(os.Stdout).Encode(sets)
		}
		printLabelledSets(os.Stdout, sets)
		return nil
	}
	dir, err := realdata.Or(*data)
	if err != nil {
		return err
	}
	truth, err := vision.LoadFieldTruth(dir)
	if err != nil {
		return err
	}
	opt := vision.DefaultFindOptions
	var results []vision.FieldResult
	for i, t := range truth {
		if !*asJSON {
			fmt.Fprintf(os.Stderr, "\r%d/%d %s", i+1, len(truth), t.Name)
		}
		r, err := vision.EvaluateField(t, opt)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if !*asJSON {
		fmt.Fprintln(os.Stderr)
	}
	if *fit {
		return fitSmudge(results)
	}
	var base []vision.BaselineResult
	if *baseline || *report != "" {
		for _, t := range truth {
			if t.Mask == "" {
				continue
			}
			b, err := vision.EvaluateBaseline(t, opt.Seed)
			if err != nil {
				return err
			}
			base = append(base, b)
		}
	}
	groups := fieldGroups(results)
	if *report != "" {
		r := fieldReport{results: results, groups: groups, baseline: base}
		if len(boxes) > 0 {
			if r.boxSets, err = evalBoxSets(boxes, false, *draw, opt); err != nil {
				return err
			}
		}
		if r.labelled, err = evalLabelledSets(labelled, false, opt); err != nil {
			return err
		}
		for _, f := range results {
			if f.Split == vision.SplitTune {
				r.samples = append(r.samples, f.Samples...)
			}
		}
		if *bench != "" {
			if r.bench, err = readBench(*bench); err != nil {
				return err
			}
		}
		if err := writeFieldReport(r, *report, *readme); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(findEvalJSON{Data: dir, Groups: groups, Fields: results, Options: opt, Baseline: base})
	}
	vision.WriteFieldTable(os.Stdout, results)
	fmt.Println()
	for _, g := range groups {
		fmt.Printf("%s (%d fields): recall %v, precision %v", g.Name, g.Fields, g.Recall, g.Precision)
		if g.Components.N > 0 {
			fmt.Printf(", components %v, Dice mean %.3f pooled %.3f", g.Components, g.Dice, g.DicePooled)
		}
		fmt.Printf(", platelets %d, smudges dropped %d\n", g.Platelets, g.Smudges)
	}
	if len(base) > 0 {
		b := sumBaseline(base)
		fmt.Printf("baseline on the masked fields: components %d/%d, cells %d/%d, precision %d/%d, Dice mean %.3f pooled %.3f\n",
			b.ComponentsFound, b.MaskComponents, b.Found, b.WhiteCells, b.TruePositives, b.Detections, b.Dice,
			2*float64(b.DiceCounts[0])/float64(b.DiceCounts[1]+b.DiceCounts[2]))
	}
	return nil
}

// fieldGroups sums results by the kind of truth and the tuning split.
func fieldGroups(rs []vision.FieldResult) []vision.FieldGroup {
	pick := func(f func(vision.FieldResult) bool) []vision.FieldResult {
		var out []vision.FieldResult
		for _, r := range rs {
			if f(r) {
				out = append(out, r)
			}
		}
		return out
	}
	return []vision.FieldGroup{
		vision.SumFields("blast fields with white-cell masks (tuning)", pick(func(r vision.FieldResult) bool { return r.Truth == "mask" })),
		vision.SumFields("normal fields, tuning", pick(func(r vision.FieldResult) bool {
			return r.Label == "normal-slide" && r.Split == vision.SplitTune
		})),
		vision.SumFields("normal fields, held out", pick(func(r vision.FieldResult) bool {
			return r.Label == "normal-slide" && r.Split == vision.SplitHeldOut
		})),
		vision.SumFields("blast fields without masks, held out (non-blast cells only)", pick(func(r vision.FieldResult) bool {
			return r.Label == "blast-slide" && r.Truth != "mask"
		})),
		vision.SumFields("all fields where precision is scored", pick(func(r vision.FieldResult) bool { return r.PrecisionScored })),
		vision.SumFields("all fields", rs),
	}
}

// fitSmudge fits the smudge model on the tuning fields' candidates.
func fitSmudge(results []vision.FieldResult) error {
	var samples []vision.SmudgeSample
	for _, r := range results {
		if r.Split == vision.SplitTune {
			samples = append(samples, r.Samples...)
		}
	}
	m, err := vision.FitSmudgeModel(samples)
	if err != nil {
		return err
	}
	kept, smudges, dropped, intact, err := vision.SmudgeCrossValidation(samples)
	if err != nil {
		return err
	}
	fmt.Printf("// %d samples from the tuning fields: %d smudge, %d intact.\n", len(samples), smudges, intact)
	fmt.Printf("// Leave one field out: %d of %d smudge cells kept, %d of %d intact cells dropped.\n", kept, smudges, dropped, intact)
	fmt.Printf("var smudgeModel = %#v\n", m)
	return nil
}

// sumBaseline adds up the baseline's counts; Dice is the mean over fields.
func sumBaseline(bs []vision.BaselineResult) vision.BaselineResult {
	var s vision.BaselineResult
	for _, b := range bs {
		s.Detections += b.Detections
		s.TruePositives += b.TruePositives
		s.MaskComponents += b.MaskComponents
		s.ComponentsFound += b.ComponentsFound
		s.WhiteCells += b.WhiteCells
		s.Found += b.Found
		s.Dice += b.Dice / float64(len(bs))
		for i := range s.DiceCounts {
			s.DiceCounts[i] += b.DiceCounts[i]
		}
	}
	return s
}
