package screening

import (
	"strings"
	"testing"

	"allscreen/model"
)

func TestDecide(t *testing.T) {
	r := Rule{BlastThreshold: 0.5, ReferBlasts: 3, ReferFraction: 0.05, MinWhiteCells: 100,
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
		{"one blast is never 'no blasts seen'", Tally{WhiteCells: 300, Blasts: 1}, Inconclusive, []string{"1 suspicious cell", "15 needed"}},
		// 200 confident cells: 5% is 10 blasts; 9 is below the share.
		{"below the share in a large count", Tally{WhiteCells: 200, Blasts: 9}, Inconclusive, []string{"9 suspicious", "10 needed"}},
		{"at the share in a large count", Tally{WhiteCells: 200, Blasts: 10}, Refer, nil},
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
	good := Rule{BlastThreshold: 0.5, ReferBlasts: 2, ReferFraction: 0.05, MinWhiteCells: 100,
		MaxUncertainFraction: 0.2, MaxOutOfDistributionFraction: 0.1}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Rule){
		"threshold 0":         func(r *Rule) { r.BlastThreshold = 0 },
		"threshold 1":         func(r *Rule) { r.BlastThreshold = 1 },
		"refer 0 blasts":      func(r *Rule) { r.ReferBlasts = 0 },
		"fraction above 1":    func(r *Rule) { r.ReferFraction = 1.5 },
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
