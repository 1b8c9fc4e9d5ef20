package model

import (
	"path/filepath"
	"strings"
	"testing"

	"allscreen/internal/realdata"
)

// TestFieldGroupsRealData checks the crop-to-field matching on real ALL-IDB
// images: a crop is found in the field it was cut from, at the place the
// committed groups file records, and not in another field.
func TestFieldGroupsRealData(t *testing.T) {
	d := realdata.Dir(t)
	crop := func(name, label string) Labelled {
		return Labelled{Path: filepath.Join(d, "allidb2", "images", name), File: name, Label: label, Group: name}
	}
	field := func(name, label string) Labelled {
		return Labelled{Path: filepath.Join(d, "allidb1", "fields", name), File: name, Label: label}
	}
	crops := []Labelled{crop("Im237_0.png", "normal"), crop("Im238_0.png", "normal")}
	fields := []Labelled{field("Im098_0.jpg", "normal-slide"), field("Im099_0.jpg", "normal-slide")}
	res, _, err := FieldGroups(crops, fields, func(c, f string) bool { return strings.HasPrefix(f, c) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		field string
		x, y  int
	}{{"Im098_0.jpg", 1304, 544}, {"Im099_0.jpg", 484, 0}}
	for i, w := range want {
		r := res[i]
		if r.Field != w.field || abs(r.X-w.x) > matchScale || abs(r.Y-w.y) > matchScale || r.Score < 0.95 {
			t.Errorf("%s: found in %q at (%d,%d), correlation %.3f; want %s at (%d,%d)", r.Crop, r.Field, r.X, r.Y, r.Score, w.field, w.x, w.y)
		}
		if r.FieldGroup != "field:"+w.field {
			t.Errorf("%s: group %q", r.Crop, r.FieldGroup)
		}
	}
	// Im237_0 alone against the wrong field: no match.
	res, _, err = FieldGroups(crops[:1], fields[1:], func(c, f string) bool { return true }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Field != "" || res[0].Score >= MatchThreshold {
		t.Errorf("Im237_0 matched the wrong field Im099_0 (correlation %.3f)", res[0].Score)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
