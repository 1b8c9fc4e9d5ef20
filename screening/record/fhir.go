package record

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"allscreen/screening"
)

// FHIR R4 (https://hl7.org/fhir/R4/). A sample's record is a Bundle of
// type collection holding a DiagnosticReport, its Observations, the
// Specimen and the Device. Codes are given as text with allscreen's own
// systems (urn:allscreen:...): no LOINC or SNOMED code names exactly what
// this screen measures, and an invented mapping would mislead a record.
// A signed result is "final" ("amended" from version 2); an unsigned one
// "preliminary".

// fhirNamespace seeds the resources' UUIDs (version 5): the same sample
// version always gives the same IDs, so a record sent twice is one record.
var fhirNamespace = uuid.MustParse("6f1f6d2e-6a2b-4f0e-9a55-1c3e0a9e7a11")

type (
	fhirObj = map[string]any
	fhirArr = []any
)

func codeText(system, code, text string) fhirObj {
	c := fhirObj{"text": text}
	if code != "" {
		c["coding"] = fhirArr{fhirObj{"system": system, "code": code, "display": text}}
	}
	return c
}

// FHIRBundle is the sample's record as a FHIR R4 Bundle (JSON).
func FHIRBundle(d screening.SampleDetail, opt Options) ([]byte, error) {
	if d.ClosedAt == nil {
		return nil, fmt.Errorf("sample %s: %w", d.Code, screening.ErrSampleOpen)
	}
	cur := d.Current()
	v := screening.Verdict{Outcome: d.Outcome, Reasons: d.Reasons, Tally: d.Tally}
	status, version := "preliminary", 0
	if cur.Signed() {
		v, version, status = *cur.Verdict, cur.Version, "final"
		if cur.Version > 1 {
			status = "amended"
		}
	}
	id := func(kind string) string {
		return "urn:uuid:" + uuid.NewSHA1(fhirNamespace, fmt.Appendf(nil, "%s/%s/v%d/%s", d.DeviceID, d.Code, version, kind)).String()
	}
	ref := func(kind, display string) fhirObj { return fhirObj{"reference": id(kind), "display": display} }
	when := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	device := d.DeviceID
	if device == "" {
		device = opt.Device
	}

	dev := fhirObj{"resourceType": "Device", "deviceName": fhirArr{fhirObj{"name": "allscreen", "type": "model-name"}},
		"version": fhirArr{
			fhirObj{"type": codeText("", "", "software"), "value": d.SoftwareVersion},
			fhirObj{"type": codeText("", "", "classifier model SHA-256"), "value": d.ModelSHA256},
		}}
	if device != "" {
		dev["identifier"] = fhirArr{fhirObj{"system": "urn:allscreen:device", "value": device}}
	}
	spec := fhirObj{"resourceType": "Specimen", "type": codeText("", "", "Peripheral blood smear, stained")}
	if d.SpecimenID != "" {
		spec["identifier"] = fhirArr{fhirObj{"value": d.SpecimenID}}
	} else {
		spec["note"] = fhirArr{fhirObj{"text": "specimen ID not recorded on the device"}}
	}

	effective := when(*d.ClosedAt)
	obs := func(kind, text string, value fhirObj) fhirObj {
		o := fhirObj{"resourceType": "Observation", "status": status,
			"code":              codeText("urn:allscreen:observation", kind, text),
			"effectiveDateTime": effective, "device": ref("device", "allscreen"), "specimen": ref("specimen", "smear")}
		for k, x := range value {
			o[k] = x
		}
		if d.Operator != "" {
			o["performer"] = fhirArr{fhirObj{"display": d.Operator}}
		}
		return o
	}
	share := 0.0
	if c := v.Tally.Confident(); c > 0 {
		share = 100 * float64(v.Tally.Blasts) / float64(c)
	}
	observations := []struct {
		kind string
		o    fhirObj
	}{
		{"white-cells", obs("white-cells", "White cells classified", fhirObj{"valueInteger": v.Tally.WhiteCells})},
		{"blasts", obs("blasts", "White cells called blast", fhirObj{"valueInteger": v.Tally.Blasts})},
		{"uncertain", obs("uncertain", "White cells the classifier was unsure of", fhirObj{"valueInteger": v.Tally.Uncertain})},
		{"blast-share", obs("blast-share", "Blast calls among confidently classified white cells",
			fhirObj{"valueQuantity": fhirObj{"value": round(share, 2), "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}})},
		{"verdict", obs("verdict", "Screening verdict", fhirObj{"valueCodeableConcept": codeText("urn:allscreen:verdict", string(v.Outcome), v.Headline())})},
	}

	report := fhirObj{"resourceType": "DiagnosticReport", "status": status,
		"identifier":        fhirArr{fhirObj{"system": "urn:allscreen:sample:" + device, "value": d.Code}},
		"code":              codeText("urn:allscreen:report", "all-screen", "Screen of a peripheral blood smear for acute lymphoblastic leukaemia blasts (allscreen)"),
		"effectiveDateTime": effective,
		"specimen":          fhirArr{ref("specimen", "smear")},
		"conclusion":        conclusion(v, cur),
		"conclusionCode":    fhirArr{codeText("urn:allscreen:verdict", string(v.Outcome), v.Headline())},
	}
	if cur.Signed() {
		report["issued"] = when(*cur.SignedAt)
		report["resultsInterpreter"] = fhirArr{fhirObj{"display": cur.SignedBy}}
	}
	var results fhirArr
	for _, o := range observations {
		results = append(results, ref(o.kind, o.o["code"].(fhirObj)["text"].(string)))
	}
	report["result"] = results

	entries := fhirArr{fhirObj{"fullUrl": id("report"), "resource": report}}
	for _, o := range observations {
		entries = append(entries, fhirObj{"fullUrl": id(o.kind), "resource": o.o})
	}
	entries = append(entries, fhirObj{"fullUrl": id("specimen"), "resource": spec}, fhirObj{"fullUrl": id("device"), "resource": dev})
	bundle := fhirObj{"resourceType": "Bundle", "type": "collection", "timestamp": when(opt.Now),
		"identifier": fhirObj{"system": "urn:allscreen:record:" + device, "value": fmt.Sprintf("%s-v%d", d.Code, version)},
		"entry":      entries}
	return json.MarshalIndent(bundle, "", "  ")
}

// conclusion is the report's conclusion in words: the verdict, its
// reasons, and whether a person reviewed it.
func conclusion(v screening.Verdict, cur *screening.ReviewVersion) string {
	var b strings.Builder
	b.WriteString(v.Headline())
	if len(v.Reasons) > 0 {
		b.WriteString(": " + strings.Join(v.Reasons, "; "))
	}
	if cur.Signed() {
		fmt.Fprintf(&b, ". Reviewed and signed by %s (version %d).", cur.SignedBy, cur.Version)
	} else {
		b.WriteString(". Not reviewed: a device result only.")
	}
	b.WriteString(" A screening aid, not a diagnosis.")
	return b.String()
}

func round(x float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}
