package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"allscreen/vision"
)

// The unseen-laboratory paragraph spans the figures on fields never tuned
// on (held-out ALL-IDB1 fields, untouched halves), never the tuning halves.
func TestUnseenLines(t *testing.T) {
	r := fieldReport{boxSets: []boxSetJSON{{Groups: []vision.BoxGroup{
		{Name: "bccd, tuning half", Split: vision.SplitTune, Recall: vision.Wilson(10, 100), Precision: vision.Wilson(10, 100)},
		{Name: "bccd, untouched half", Split: vision.SplitUntouched, Recall: vision.Wilson(90, 100), Precision: vision.Wilson(80, 100)},
	}}}}
	var b bytes.Buffer
	r.unseenLines(&b, vision.FieldGroup{Recall: vision.Wilson(19, 20), Precision: vision.Wilson(20, 20)},
		vision.FieldGroup{Recall: vision.Wilson(47, 50)})
	got := b.String()
	lo := min(vision.Wilson(90, 100).Lo, vision.Wilson(19, 20).Lo, vision.Wilson(47, 50).Lo)
	for _, want := range []string{"untouched\nhalves of `bccd`", "recall was 0.900-0.950", "precision 0.800-1.000", fmt.Sprintf("lowest 95%% bound %.3f", lo)} {
		if !strings.Contains(got, want) {
			t.Errorf("%q not in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "0.100") {
		t.Errorf("a tuning half's figures leaked in:\n%s", got)
	}
}
