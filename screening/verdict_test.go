package screening

import (
	"strings"
	"testing"

	"allscreen/model"
)

func TestDecide(t *testing.T) {
	// 1% false positives per cell: in 100 normal cells 5 or more blast calls
	// happen with probability 0.0034 (4 or more: 0.018); in 200, 7 or more
	// with 0.0045 (6: 0.0165); in 300, 9 or more with 0.0036 (8: 0.0115).
	r := Rule{BlastThreshold: 0.5, CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 3, MinWhiteCells: 100,
		MaxUncertainFraction: 0.2, MaxOutOfDistributionFraction: 0.1}
	cases := []struct {
		name    string
		t       Tally
		want    Outcome
		reasons []string // substrings, one per expected reason
	}{
		{"nothing seen", Tally{}, Inconclusive, []string{"no white cells"}},
		{"clean 100", Tally{WhiteCells: 100}, NoBlastsSeen, []string{"no blast among 100"}},
		{"clean 500", Tally{WhiteCells: 500}, NoBlastsSeen, []string{"500"}},
		{"99 cells is too few", Tally{WhiteCells: 99}, Inconclusive, []string{"only 99", "100 needed"}},
		{"uncertain cells do not count toward the minimum", Tally{WhiteCells: 110, Uncertain: 11}, Inconclusive, []string{"only 99"}},
		{"uncertain share at the limit is fine", Tally{WhiteCells: 150, Uncertain: 30}, NoBlastsSeen, nil},
		{"too many uncertain", Tally{WhiteCells: 150, Uncertain: 31}, Inconclusive, []string{"unsure of 31 of 150"}},
		{"blasts at the count", Tally{WhiteCells: 40, Blasts: 3}, Refer, []string{"3 of 40"}},
		{"refer even with few cells", Tally{WhiteCells: 20, Blasts: 10}, Refer, nil},
		{"refer despite many uncertain", Tally{WhiteCells: 100, Uncertain: 50, Blasts: 20}, Refer, nil},
		{"one blast is never 'no blasts seen'", Tally{WhiteCells: 300, Blasts: 1}, Inconclusive, []string{"1 suspicious cell", "9 needed"}},
		{"4 in 100 can be chance", Tally{WhiteCells: 100, Blasts: 4}, Inconclusive, []string{"4 suspicious", "5 needed"}},
		{"5 in 100 is not", Tally{WhiteCells: 100, Blasts: 5}, Refer, nil},
		{"6 in 200 can be chance", Tally{WhiteCells: 200, Blasts: 6}, Inconclusive, []string{"6 suspicious", "7 needed"}},
		{"7 in 200 is not", Tally{WhiteCells: 200, Blasts: 7}, Refer, nil},
		{"out of distribution beats blasts", Tally{WhiteCells: 100, Blasts: 50, Uncertain: 11, OutOfDistribution: 11}, Inconclusive, []string{"11 of 100", "unlike the model's training data"}},
		{"out of distribution at the limit", Tally{WhiteCells: 110, Uncertain: 10, OutOfDistribution: 10}, NoBlastsSeen, nil},
		{"several reasons at once", Tally{WhiteCells: 50, Blasts: 1, Uncertain: 20}, Inconclusive, []string{"1 suspicious", "unsure of 20 of 50", "only 30"}},
		{"no blasts, few cells and unsure", Tally{WhiteCells: 50, Uncertain: 20}, Inconclusive, []string{"unsure of 20 of 50", "only 30"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Decide(c.t, r)
			if v.Outcome != c.want {
				t.Fatalf("Decide(%+v) = %s (%v), want %s", c.t, v.Outcome, v.Reasons, c.want)
			}
			if v.Tally != c.t {
				t.Errorf("verdict carries tally %+v, want %+v", v.Tally, c.t)
			}
			if len(v.Reasons) == 0 {
				t.Error("no reason given")
			}
			all := strings.Join(v.Reasons, " | ")
			for _, want := range c.reasons {
				if !strings.Contains(all, want) {
					t.Errorf("reasons %q lack %q", all, want)
				}
			}
		})
	}
}

func TestHeadline(t *testing.T) {
	for _, c := range []struct {
		v    Verdict
		want string
	}{
		{Verdict{Outcome: Refer}, "ALL SUSPECTED - REFER"},
		{Verdict{Outcome: NoBlastsSeen, Tally: Tally{WhiteCells: 130, Uncertain: 7}}, "NO BLASTS SEEN in 123 white cells"},
		{Verdict{Outcome: Inconclusive}, "INCONCLUSIVE - REVIEW"},
	} {
		if got := c.v.Headline(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.v, got, c.want)
		}
	}
}

func TestCallCell(t *testing.T) {
	r := Rule{BlastThreshold: 0.6}
	for _, c := range []struct {
		p    model.Prediction
		want CellCall
	}{
		{model.Prediction{Blast: 0.59}, CellCall{}},
		{model.Prediction{Blast: 0.6}, CellCall{Blast: true}},
		{model.Prediction{Blast: 0.99, Uncertain: true}, CellCall{Uncertain: true}},
		{model.Prediction{Blast: 0.99, OutOfDistribution: true}, CellCall{Uncertain: true, OutOfDistribution: true}},
	} {
		if got := r.CallCell(c.p); got != c.want {
			t.Errorf("CallCell(%+v) = %+v, want %+v", c.p, got, c.want)
		}
	}
}

func TestRuleValidate(t *testing.T) {
	good := Rule{BlastThreshold: 0.5, CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 2, MinWhiteCells: 100,
		MaxUncertainFraction: 0.2, MaxOutOfDistributionFraction: 0.1}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Rule){
		"threshold 0":         func(r *Rule) { r.BlastThreshold = 0 },
		"threshold 1":         func(r *Rule) { r.BlastThreshold = 1 },
		"refer 0 blasts":      func(r *Rule) { r.ReferBlasts = 0 },
		"fp rate 1":           func(r *Rule) { r.CellFalsePositiveRate = 1 },
		"alpha 0":             func(r *Rule) { r.ReferAlpha = 0 },
		"no minimum":          func(r *Rule) { r.MinWhiteCells = 0 },
		"negative uncertain":  func(r *Rule) { r.MaxUncertainFraction = -0.1 },
		"ood fraction is NaN": func(r *Rule) { r.MaxOutOfDistributionFraction = nan() },
	} {
		r := good
		mut(&r)
		if err := r.Validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, r)
		}
	}
}

func nan() float64 {
	var z float64
	return z / z
}

func TestReferCountMatchesBinomialTail(t *testing.T) {
	r := Rule{CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 1}
	// Exact tails computed independently (scipy.stats.binom.sf(k-1, n, p)).
	for _, c := range []struct{ n, want int }{{10, 2}, {50, 4}, {100, 5}, {200, 7}, {300, 9}, {1000, 19}} {
		if got := r.referCount(c.n); got != c.want {
			t.Errorf("referCount(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	if got := (Rule{ReferBlasts: 2}).referCount(500); got != 2 {
		t.Errorf("no false positives: referCount = %d, want ReferBlasts 2", got)
	}
	if got := (Rule{CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 3}).referCount(10); got != 3 {
		t.Errorf("small count: %d, want the ReferBlasts floor 3", got)
	}
}

func TestRuleFor(t *testing.T) {
	th, errRate := 0.62, 0.013
	r, err := RuleFor(model.OperatingPoint{BlastThreshold: &th, ValidationErrorOutside: &errRate}, DefaultRuleConfig)
	if err != nil {
		t.Fatal(err)
	}
	if r.BlastThreshold != 0.62 || r.CellFalsePositiveRate != 0.013 || r.MinWhiteCells != 100 {
		t.Errorf("rule %+v", r)
	}
	zero := 0.0
	r, err = RuleFor(model.OperatingPoint{BlastThreshold: &th, ValidationErrorOutside: &zero}, DefaultRuleConfig)
	if err != nil || r.CellFalsePositiveRate != MinCellFalsePositiveRate {
		t.Errorf("a measured 0 error rate: %+v %v", r, err)
	}
	r, err = RuleFor(model.OperatingPoint{BlastThreshold: &th}, DefaultRuleConfig)
	if err != nil || r.CellFalsePositiveRate != FallbackCellFalsePositiveRate {
		t.Errorf("without a validation error rate: %+v %v", r, err)
	}
	if _, err := RuleFor(model.OperatingPoint{}, DefaultRuleConfig); err == nil {
		t.Error("a manifest without a threshold gave a rule")
	}
	bad := DefaultRuleConfig
	bad.MinWhiteCells = 0
	if _, err := RuleFor(model.OperatingPoint{BlastThreshold: &th}, bad); err == nil {
		t.Error("min_white_cells 0 accepted")
	}
}

// TestDecideIncomplete: a sample closed before it was finished never says
// NO BLASTS SEEN, however many cells it holds, and a referral stands.
func TestDecideIncomplete(t *testing.T) {
	r := Rule{BlastThreshold: 0.5, CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 3, MinWhiteCells: 100,
		MaxUncertainFraction: 0.2, MaxOutOfDistributionFraction: 0.1}
	clean := Tally{Fields: 20, WhiteCells: 300}
	if Decide(clean, r).Outcome != NoBlastsSeen {
		t.Fatal("the complete sample should be no blasts seen; the test tests nothing")
	}
	v := DecideIncomplete(clean, r, "found open at power-on")
	if v.Outcome != Inconclusive || !v.Incomplete || v.Headline() != "INCOMPLETE - REVIEW" ||
		v.Reasons[0] != "incomplete: found open at power-on" {
		t.Errorf("incomplete clean sample: %+v, %q", v, v.Headline())
	}
	blasts := Tally{Fields: 20, WhiteCells: 300, Blasts: 40}
	if v := DecideIncomplete(blasts, r, "open too long"); v.Outcome != Refer || v.Headline() != "ALL SUSPECTED - REFER" || !v.Incomplete {
		t.Errorf("incomplete sample with blasts: %+v", v)
	}
}

// TestShortReasonsFitASixteenColumnLine: every inconclusive verdict has one
// short reason per reason, each within a 16x2 LCD's line.
func TestShortReasonsFitASixteenColumnLine(t *testing.T) {
	for _, min := range []int{100, 1000, 9999} {
		r := Rule{BlastThreshold: 0.5, CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 2, MinWhiteCells: min,
			MaxUncertainFraction: 0.2, MaxOutOfDistributionFraction: 0.1}
		for _, t0 := range []Tally{{}, {WhiteCells: 5, OutOfDistribution: 5, Uncertain: 5}, {WhiteCells: 9998, Blasts: 1},
			{WhiteCells: 9998, Uncertain: 9000}, {WhiteCells: 40, Blasts: 1, Uncertain: 20}} {
			for _, v := range []Verdict{Decide(t0, r), DecideIncomplete(t0, r, "why")} {
				if v.Outcome == Inconclusive && len(v.Short) != len(v.Reasons) {
					t.Errorf("%+v: %d short reasons for %d reasons", t0, len(v.Short), len(v.Reasons))
				}
				for _, s := range v.Short {
					if len(s) > 16 || s == "" {
						t.Errorf("%+v min %d: short reason %q does not fit 16 columns", t0, min, s)
					}
				}
			}
		}
	}
}
