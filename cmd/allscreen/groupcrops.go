package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"

	"allscreen/model"
)

func init() {
	register(command{name: "group-crops", summary: "find the field each crop was cut from, so splits keep a field's crops together", run: runGroupCrops})
}

func runGroupCrops(argv []string) error {
	fs := newFlags("group-crops", "")
	crops := fs.String("crops", "", "folder of single-cell crops (`DIR`)")
	cropLabels := fs.String("labels", "", "the crops' labels `CSV` (file, label, optional group)")
	fields := fs.String("fields", "", "folder of whole fields (`DIR`)")
	fieldLabels := fs.String("field-labels", "", "the fields' labels `CSV`")
	out := fs.String("out", "", "write one row per crop to this `CSV`")
	fieldsOut := fs.String("fields-out", "", "write one row per field (its overlap family) to this `CSV`")
	verbose := fs.Bool("v", false, "print every match")
	rest, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *crops == "" || *fields == "" || *out == "" {
		fs.Usage()
		return errUsage
	}
	cs, err := model.ReadLabelled(*crops, *cropLabels, "label")
	if err != nil {
		return err
	}
	fl, err := model.ReadLabelled(*fields, *fieldLabels, "label")
	if err != nil {
		return err
	}
	// A crop labelled "blast" comes from a field labelled "blast-slide".
	same := func(cropLabel, fieldLabel string) bool { return strings.HasPrefix(fieldLabel, cropLabel) }
	res, fieldGroup, err := model.FieldGroups(cs, fl, same, func(s string) {
		if *verbose || strings.HasPrefix(s, "fields ") {
			fmt.Fprintln(os.Stderr, s)
		}
	})
	if err != nil {
		return err
	}
	rows := [][]string{{"file", "label", "group", "field", "x", "y", "score", "field_group"}}
	matched := 0
	for i, r := range res {
		if r.Field != "" {
			matched++
		}
		rows = append(rows, []string{r.Crop, cs[i].Label, cs[i].Group, r.Field, strconv.Itoa(r.X), strconv.Itoa(r.Y),
			strconv.FormatFloat(r.Score, 'f', 4, 64), r.FieldGroup})
	}
	if err := writeCSV(*out, rows); err != nil {
		return err
	}
	if *fieldsOut != "" {
		frows := [][]string{{"file", "label", "field_group"}}
		for _, f := range fl {
			frows = append(frows, []string{f.File, f.Label, fieldGroup[f.File]})
		}
		if err := writeCSV(*fieldsOut, frows); err != nil {
			return err
		}
	}
	fmt.Printf("%d of %d crops matched to one of %d fields (correlation >= %.2f); wrote %s\n", matched, len(cs), len(fl), model.MatchThreshold, *out)
	return nil
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
