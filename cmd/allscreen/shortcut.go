package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"allscreen/model"
)

func init() {
	register(command{name: "shortcut", summary: "how well image size, file size or background colour alone predicts the labels", run: runShortcut})
}

func runShortcut(argv []string) error {
	fs := newFlags("shortcut", "")
	data := fs.String("data", "", "folder of labelled images (`DIR`)")
	labels := fs.String("labels", "", "labels `CSV`; without it each sub-folder is a label")
	labelColumn := fs.String("label-column", "label", "the labels CSV column holding the label")
	groupColumn := fs.String("group-column", "group", "the labels CSV column holding the group (copies of one image, one field)")
	features := fs.String("features", "size,aspect,bytes,border-bstar,border-rgb", "comma-separated features: "+strings.Join(model.ShortcutFeatures, ", ")+" (cell-rgb needs --prepared)")
	folds := fs.Int("folds", 5, "grouped cross-validation folds")
	blocks := fs.Int("group-blocks", 0, "group runs of `N` consecutive file numbers per label (data without patient IDs)")
	asJSON := fs.Bool("json", false, "print a JSON array, one object per feature")
	only := fs.String("only", "", "keep only these comma-separated `LABELS`")
	prepared := fs.Bool("prepared", false, "--data is a folder `allscreen prepare` wrote (for the cell-rgb and rim-rgb features)")
	sources := fs.String("sources", "", "instead of --data: prepared folders, `NAME=DIR,...`; the label is the folder's NAME (can the input tell the source?)")
	positive := fs.String("positive", "", "with --sources: label NAME against \"other\" (the other sources)")
	rest, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(rest) > 0 || (*data == "") == (*sources == "") {
		fs.Usage()
		return errUsage
	}
	var items []model.Labelled
	if *sources != "" {
		items, err = sourceItems(*sources, *positive)
		*data = *sources
	} else if *prepared {
		items, err = model.ReadPreparedLabelled(*data)
	} else {
		items, err = model.ReadLabelledGroups(*data, *labels, *labelColumn, *groupColumn)
	}
	if err != nil {
		return err
	}
	if *only != "" {
		keep := strings.Split(*only, ",")
		items = slices.DeleteFunc(items, func(it model.Labelled) bool { return !slices.Contains(keep, it.Label) })
		if len(items) == 0 {
			return fmt.Errorf("no image has one of the labels %q", keep)
		}
	}
	if *blocks > 0 {
		for i, it := range items {
			if g := model.BlockGroup(it.Label, it.File, *blocks); g != "" {
				items[i].Group = g
			}
		}
	}
	var ls []string
	for _, it := range items {
		if !slices.Contains(ls, it.Label) {
			ls = append(ls, it.Label)
		}
	}
	slices.Sort(ls)
	var results []*model.ShortcutResult
	for _, f := range strings.Split(*features, ",") {
		r, err := model.ShortcutBaseline(items, ls, strings.TrimSpace(f), *folds, 1)
		if err != nil {
			return err
		}
		r.MeasuredOn = fmt.Sprintf("%s: %d images, %d-fold cross-validation grouped by %q", *data, r.N, *folds, *groupColumn)
		if *only != "" {
			keep := strings.Split(*only, ",")
			items = slices.DeleteFunc(items, func(it model.Labelled) bool { return !slices.Contains(keep, it.Label) })
			if len(items) == 0 {
				return fmt.Errorf("no image has one of the labels %q", keep)
			}
		}
		if *blocks > 0 {
			r.MeasuredOn = fmt.Sprintf("%s: %d images, %d-fold cross-validation grouped by blocks of %d file numbers", *data, r.N, *folds, *blocks)
		}
		results = append(results, r)
		if !*asJSON {
			fmt.Printf("feature %s (%s):\n%s\n", r.Feature, r.Classifier, r.Text())
		}
	}
	if *asJSON {
		raw, _ := json.MarshalIndent(results, "", " ")
		os.Stdout.Write(append(raw, '\n'))
	}
	return nil
}

// sourceItems lists prepared folders' inputs labelled by their folder's
// name (or positive against "other"), groups kept apart per folder.
func sourceItems(spec, positive string) ([]model.Labelled, error) {
	var items []model.Labelled
	found := positive == ""
	for _, f := range strings.Split(spec, ",") {
		name, dir, ok := strings.Cut(f, "=")
		if !ok || name == "" || dir == "" {
			return nil, fmt.Errorf("--sources: %q is not NAME=DIR", f)
		}
		its, err := model.ReadPreparedLabelled(dir)
		if err != nil {
			return nil, err
		}
		label := name
		if positive != "" && name != positive {
			label = "other"
		}
		found = found || name == positive
		for _, it := range its {
			it.Label, it.Group = label, name+"/"+it.Group
			items = append(items, it)
		}
	}
	if !found {
		return nil, fmt.Errorf("--positive %q is none of the --sources", positive)
	}
	return items, nil
}
