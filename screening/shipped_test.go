package screening

import (
	"testing"

	"allscreen/model"
)

// The provisional shipped model's manifest yields a valid rule.
func TestRuleForShippedModel(t *testing.T) {
	net, err := model.Load("../model/shipped/detect.json")
	if err != nil {
		t.Fatalf("shipped model: %v", err)
	}
	defer net.Close()
	r, err := RuleFor(net.Manifest().Operating, DefaultRuleConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rule from the shipped model: %+v; refer at %d blasts in 100 confident cells", r, r.referCount(100))
}
