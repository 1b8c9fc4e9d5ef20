package main

import (
	"encoding/json"
	"fmt"
	"os"

	"allscreen/internal/par"
	"allscreen/internal/realdata"
	"allscreen/vision"
)

func init() {
	register(command{name: "camera-eval", summary: "measure cell finding and the quality gate on degraded copies of real fields", run: runCameraEval})
}

// cameraEvalJSON is camera-eval's measurement: every field, original and
// degraded, with its gate verdict.
type cameraEvalJSON struct {
	Degradations []degradationJSON     `json:"degradations"`
	Results      []vision.CameraResult `json:"results"`
}

type degradationJSON struct {
	Name string   `json:"name"`
	What string   `json:"what"`
	Want []string `json:"want,omitempty"`
}

func runCameraEval(argv []string) error {
	fs := newFlags("camera-eval", "")
	data := fs.String("data", "", "data folder holding allidb1/ (default: $"+realdata.EnvVar+" or ../shared/data)")
	var boxes multiFlag
	fs.Var(&boxes, "boxes", "also measure the field set in `DIR` (a folder with boxes.csv); repeatable")
	out := fs.String("json", "", "write the measurement to `FILE`")
	from := fs.String("from", "", "read a measurement written by --json instead of measuring, and judge its measures with this build's quality thresholds")
	report := fs.String("report", "", "write the markdown report (docs/camera.md) to `FILE`")
	jobs := fs.Int("jobs", 1, "fields measured at once")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(args) > 0 || (*out == "" && *report == "") {
		fs.Usage()
		return errUsage
	}
	var m cameraEvalJSON
	if *from != "" {
		b, err := os.ReadFile(*from)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("%s: %w", *from, err)
		}
		// The stored measures judged by this build's thresholds, as
		// CheckQuality judges them (a threshold change needs no new run).
		for i := range m.Results {
			m.Results[i].Quality.Issue = vision.DefaultQualityThresholds.Judge(m.Results[i].Quality)
		}
	} else {
		dir, err := realdata.Or(*data)
		if err != nil {
			return err
		}
		if m, err = measureCameras(dir, boxes, max(1, *jobs)); err != nil {
			return err
		}
	}
	if *out != "" {
		b, err := json.MarshalIndent(m, "", " ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if *report != "" {
		return writeCameraReport(*report, m)
	}
	return nil
}

// measureCameras lists ALL-IDB1's fields and every box set's, then
// measures each field and its degraded copies, jobs at a time.
func measureCameras(dir string, boxDirs []string, jobs int) (cameraEvalJSON, error) {
	m := cameraEvalJSON{}
	degs := vision.Degradations()
	for _, d := range degs {
		dj := degradationJSON{Name: d.Name, What: d.What}
		for _, w := range d.Want {
			dj.Want = append(dj.Want, w.String())
		}
		m.Degradations = append(m.Degradations, dj)
	}
	truth, err := vision.LoadFieldTruth(dir)
	if err != nil {
		return m, err
	}
	var fields []vision.CameraField
	for _, t := range truth {
		r, err := vision.EvaluateField(t, vision.DefaultFindOptions)
		if err != nil {
			return m, err
		}
		fields = append(fields, vision.CameraFieldFromTruth(t, r))
	}
	for _, d := range boxDirs {
		bf, err := vision.LoadBoxFields(d)
		if err != nil {
			return m, err
		}
		fields = append(fields, vision.CameraFieldsFromBoxes(boxSetName(d), bf)...)
	}
	results := make([][]vision.CameraResult, len(fields))
	errs := make([]error, len(fields))
	bar := newProgress(os.Stderr, "camera-eval")
	par.Each(len(fields), jobs, func(i int) {
		results[i], errs[i] = vision.EvaluateCamera(fields[i], vision.DefaultFindOptions, degs)
	}, bar.update)
	bar.finish()
	for i, e := range errs {
		if e != nil {
			return m, e
		}
		m.Results = append(m.Results, results[i]...)
	}
	return m, nil
}
