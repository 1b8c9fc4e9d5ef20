package screening

import (
	"fmt"
	"math"

	"allscreen/model"
)

// Outcome is the kind of verdict on a sample.
type Outcome string

const (
	Refer        Outcome = "refer"          // ALL SUSPECTED - REFER
	NoBlastsSeen Outcome = "no-blasts-seen" // NO BLASTS SEEN in N white cells
	Inconclusive Outcome = "inconclusive"   // INCONCLUSIVE - REVIEW
)

// Tally counts the white cells of a field or of a sample by how the model
// saw them.
type Tally struct {
	Fields     int `json:"fields"`      // accepted fields (0 in a field's own tally)
	WhiteCells int `json:"white_cells"` // white cells classified
	// Blasts are the cells called blast: P(blast) at or above the rule's
	// threshold and neither uncertain nor out of distribution.
	Blasts int `json:"blasts"`
	// Uncertain counts cells the model flagged as not to be trusted, for
	// any reason (out-of-distribution cells included).
	Uncertain int `json:"uncertain"`
	// OutOfDistribution counts cells unlike the model's training data.
	OutOfDistribution int `json:"out_of_distribution"`
}

// Confident is the number of white cells the model gave a usable answer on.
func (t Tally) Confident() int { return t.WhiteCells - t.Uncertain }

// Add returns the sum of two tallies.
func (t Tally) Add(o Tally) Tally {
	return Tally{Fields: t.Fields + o.Fields, WhiteCells: t.WhiteCells + o.WhiteCells, Blasts: t.Blasts + o.Blasts,
		Uncertain: t.Uncertain + o.Uncertain, OutOfDistribution: t.OutOfDistribution + o.OutOfDistribution}
}

// Rule holds every threshold the verdict depends on. The per-cell ones come
// from the model's manifest (its operating point, chosen on validation
// data); MinWhiteCells comes from the appliance's configuration. A copy is
// stored with every verdict.
type Rule struct {
	// BlastThreshold: a cell with P(blast) at or above it is called a blast
	// (unless the model flagged it uncertain). From the manifest.
	BlastThreshold float64 `json:"blast_threshold"`
	// CellFalsePositiveRate is the share of normal white cells the model
	// calls blast at BlastThreshold, measured on validation data. From the
	// manifest.
	CellFalsePositiveRate float64 `json:"cell_false_positive_rate"`
	// ReferAlpha: a sample is referred when it holds more blast calls than
	// the model's false positives would produce in a normal sample of the
	// same size with probability ReferAlpha (a binomial tail), and at least
	// ReferBlasts of them. The tail keeps false positives in a large count
	// from adding up to a referral; ReferBlasts keeps one stray cell from
	// doing it in a small one.
	ReferAlpha  float64 `json:"refer_alpha"`
	ReferBlasts int     `json:"refer_blasts"`
	// MinWhiteCells: "no blasts seen" needs at least this many confidently
	// classified white cells. From configuration.
	MinWhiteCells int `json:"min_white_cells"`
	// MaxUncertainFraction: above this share of uncertain cells, the
	// model's confident answers on this slide are not trusted either.
	MaxUncertainFraction float64 `json:"max_uncertain_fraction"`
	// MaxOutOfDistributionFraction: above this share of cells unlike the
	// training data (wrong stain, wrong magnification, debris), no verdict
	// but "review" is given, a referral included.
	MaxOutOfDistributionFraction float64 `json:"max_out_of_distribution_fraction"`
}

// DefaultMinWhiteCells is the usual manual differential count (100 cells).
// Seeing no blast in 100 cells bounds the blast share below 3% with 95%
// confidence (the rule of three), well under the 20% that defines acute
// leukaemia and under the share circulating in most ALL at presentation.
const DefaultMinWhiteCells = 100

// Validate reports a rule that cannot give sensible verdicts.
func (r Rule) Validate() error {
	switch {
	case !(r.BlastThreshold > 0 && r.BlastThreshold < 1):
		return fmt.Errorf("verdict rule: blast threshold %v must lie strictly between 0 and 1", r.BlastThreshold)
	case r.ReferBlasts < 1:
		return fmt.Errorf("verdict rule: refer_blasts %d must be at least 1", r.ReferBlasts)
	case !(r.CellFalsePositiveRate >= 0 && r.CellFalsePositiveRate < 1):
		return fmt.Errorf("verdict rule: cell_false_positive_rate %v must lie in 0..1", r.CellFalsePositiveRate)
	case !(r.ReferAlpha > 0 && r.ReferAlpha < 1):
		return fmt.Errorf("verdict rule: refer_alpha %v must lie strictly between 0 and 1", r.ReferAlpha)
	case r.MinWhiteCells < 1:
		return fmt.Errorf("verdict rule: min_white_cells %d must be at least 1", r.MinWhiteCells)
	case !(r.MaxUncertainFraction >= 0 && r.MaxUncertainFraction <= 1):
		return fmt.Errorf("verdict rule: max_uncertain_fraction %v must lie in 0..1", r.MaxUncertainFraction)
	case !(r.MaxOutOfDistributionFraction >= 0 && r.MaxOutOfDistributionFraction <= 1):
		return fmt.Errorf("verdict rule: max_out_of_distribution_fraction %v must lie in 0..1", r.MaxOutOfDistributionFraction)
	}
	return nil
}

// CellCall is what the rule makes of one cell's prediction.
type CellCall struct {
	Blast             bool
	Uncertain         bool
	OutOfDistribution bool
}

// CallCell applies the rule's threshold to one prediction.
func (r Rule) CallCell(p model.Prediction) CellCall {
	ood := outOfDistribution(p)
	unc := p.Uncertain || ood
	return CellCall{Blast: !unc && float64(p.Blast) >= r.BlastThreshold, Uncertain: unc, OutOfDistribution: ood}
}

// Count adds one called cell to a tally.
func (t Tally) Count(c CellCall) Tally {
	t.WhiteCells++
	if c.Blast {
		t.Blasts++
	}
	if c.Uncertain {
		t.Uncertain++
	}
	if c.OutOfDistribution {
		t.OutOfDistribution++
	}
	return t
}

// Verdict is the result of a sample.
type Verdict struct {
	Outcome Outcome `json:"outcome"`
	// Reasons say, in words for a person, why the outcome was reached
	// (always set for Inconclusive).
	Reasons []string `json:"reasons"`
	// Short are the reasons in words that fit a 16-column display line,
	// one per reason, for the device's screens.
	Short []string `json:"-"`
	Tally Tally    `json:"tally"`
	// Incomplete: the sample was closed before the technician finished it
	// (found open at power-on and closed, or open too long); see
	// DecideIncomplete.
	Incomplete bool `json:"incomplete,omitempty"`
}

// Headline is the verdict as the display shows it.
func (v Verdict) Headline() string {
	switch {
	case v.Outcome == Refer:
		return "ALL SUSPECTED - REFER"
	case v.Incomplete:
		return "INCOMPLETE - REVIEW"
	case v.Outcome == NoBlastsSeen:
		return fmt.Sprintf("NO BLASTS SEEN in %d white cells", v.Tally.Confident())
	default:
		return "INCONCLUSIVE - REVIEW"
	}
}

// Decide is the verdict rule: the one place that turns a sample's tally into
// a verdict. In order:
//  1. no white cells, or too many out of distribution -> inconclusive (the
//     model's answers, a blast call included, mean nothing on such a slide);
//  2. enough blasts by count and by share -> refer (never downgraded by too
//     few cells or by uncertain ones: a missed leukaemia costs more than a
//     referral, and a referral is reviewed by a haematologist anyway);
//  3. any blast at all, too many uncertain cells, or too few confident cells
//     -> inconclusive, with every reason that applies ("no blasts seen" is
//     never said when a blast was seen);
//  4. otherwise no blasts seen, in the number of confident cells.
func Decide(t Tally, r Rule) Verdict {
	v := Verdict{Tally: t}
	conf := t.Confident()
	if t.WhiteCells == 0 {
		v.Outcome, v.Reasons, v.Short = Inconclusive, []string{"no white cells were found in the accepted fields"}, []string{"No WBC found"}
		return v
	}
	if frac(t.OutOfDistribution, t.WhiteCells) > r.MaxOutOfDistributionFraction {
		v.Outcome = Inconclusive
		v.Reasons = []string{fmt.Sprintf("%d of %d white cells look unlike the model's training data: check the stain, focus and magnification",
			t.OutOfDistribution, t.WhiteCells)}
		v.Short = []string{"Unusual cells"}
		return v
	}
	if t.Blasts >= r.referCount(conf) {
		v.Outcome = Refer
		v.Reasons = []string{fmt.Sprintf("%d of %d confidently classified white cells look like blasts", t.Blasts, conf)}
		return v
	}
	if t.Blasts > 0 {
		v.Reasons = append(v.Reasons, fmt.Sprintf("%d suspicious cell(s) in %d, fewer than the %d needed to refer: review them",
			t.Blasts, conf, r.referCount(conf)))
		v.Short = append(v.Short, fmt.Sprintf("%d suspicious", t.Blasts))
	}
	if frac(t.Uncertain, t.WhiteCells) > r.MaxUncertainFraction {
		v.Reasons = append(v.Reasons, fmt.Sprintf("the model was unsure of %d of %d white cells", t.Uncertain, t.WhiteCells))
		v.Short = append(v.Short, fmt.Sprintf("%d unsure", t.Uncertain))
	}
	if conf < r.MinWhiteCells {
		v.Reasons = append(v.Reasons, fmt.Sprintf("only %d white cells classified with confidence; %d needed: capture more fields",
			conf, r.MinWhiteCells))
		few := fmt.Sprintf("Only %d/%d WBC", conf, r.MinWhiteCells)
		if len(few) > 16 {
			few = fmt.Sprintf("%d/%d WBC", conf, r.MinWhiteCells)
		}
		v.Short = append(v.Short, few)
	}
	if len(v.Reasons) > 0 {
		v.Outcome = Inconclusive
		return v
	}
	v.Outcome = NoBlastsSeen
	v.Reasons = []string{fmt.Sprintf("no blast among %d confidently classified white cells", conf)}
	return v
}

// DecideIncomplete is the verdict of a sample closed before the technician
// finished it, for the reason why. Its fields are still judged by Decide: a
// referral stands (a missed leukaemia costs more than a referral, and the
// fields are all this slide's), and anything else becomes INCOMPLETE -
// REVIEW, never NO BLASTS SEEN: nobody said the slide was done.
// incompletePrefix starts the first reason of an incomplete verdict.
const incompletePrefix = "incomplete: "

func DecideIncomplete(t Tally, r Rule, why string) Verdict {
	v := Decide(t, r)
	v.Incomplete = true
	v.Reasons = append([]string{incompletePrefix + why}, v.Reasons...)
	v.Short = append([]string{"Incomplete"}, v.Short...)
	if v.Outcome != Refer {
		v.Outcome = Inconclusive
	}
	return v
}

// referCount is the number of blast calls that refers a sample with n
// confidently classified cells: the smallest k with
// P(X >= k) <= ReferAlpha for X ~ Binomial(n, CellFalsePositiveRate), and
// never below ReferBlasts.
func (r Rule) referCount(n int) int {
	p := r.CellFalsePositiveRate
	if p <= 0 || n <= 0 {
		return r.ReferBlasts
	}
	// Walk the pmf upward in log space; tail = 1 - cdf(k-1).
	logPMF := float64(n) * math.Log1p(-p) // P(X = 0)
	cdf := 0.0
	for k := 0; k <= n; k++ {
		if 1-cdf <= r.ReferAlpha {
			return max(k, r.ReferBlasts)
		}
		cdf += math.Exp(logPMF)
		logPMF += math.Log(float64(n-k)) - math.Log(float64(k+1)) + math.Log(p) - math.Log1p(-p)
	}
	return max(n+1, r.ReferBlasts) // no count is unlikely enough: never refer on blasts alone
}

func frac(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

func outOfDistribution(p model.Prediction) bool { return p.OutOfDistribution }

// RuleConfig is the part of the verdict rule the appliance's configuration
// sets; the rest comes from the model's manifest.
type RuleConfig struct {
	MinWhiteCells                int
	ReferAlpha                   float64
	ReferBlasts                  int
	MaxUncertainFraction         float64
	MaxOutOfDistributionFraction float64
}

// DefaultRuleConfig holds the configuration defaults; docs/screening.md
// gives the reason for each.
var DefaultRuleConfig = RuleConfig{
	MinWhiteCells:                DefaultMinWhiteCells,
	ReferAlpha:                   0.01,
	ReferBlasts:                  2,
	MaxUncertainFraction:         0.25,
	MaxOutOfDistributionFraction: 0.10,
}

// FallbackCellFalsePositiveRate is used when a manifest states no
// validation error rate: a deliberately pessimistic 5%, so a model of
// unknown quality needs many blast calls to refer.
const FallbackCellFalsePositiveRate = 0.05

// MinCellFalsePositiveRate floors a manifest's validation error rate: a
// validation set of a few hundred confident cells cannot show a rate below
// about 1% (no error in 300 cells still allows 1% at 95% confidence, the
// rule of three), so a measured 0 is not taken at its word.
const MinCellFalsePositiveRate = 0.01

// RuleFor builds the verdict rule from a detection model's operating point
// and the configuration. The per-cell false positive rate is the
// manifest's validation error rate outside the uncertain band (the share
// of confident calls that were wrong) but at least MinCellFalsePositiveRate,
// or FallbackCellFalsePositiveRate when the manifest gives none.
func RuleFor(op model.OperatingPoint, cfg RuleConfig) (Rule, error) {
	if op.BlastThreshold == nil {
		return Rule{}, fmt.Errorf("verdict rule: the model's manifest has no operating_point.blast_threshold")
	}
	r := Rule{
		BlastThreshold:               *op.BlastThreshold,
		CellFalsePositiveRate:        FallbackCellFalsePositiveRate,
		ReferAlpha:                   cfg.ReferAlpha,
		ReferBlasts:                  cfg.ReferBlasts,
		MinWhiteCells:                cfg.MinWhiteCells,
		MaxUncertainFraction:         cfg.MaxUncertainFraction,
		MaxOutOfDistributionFraction: cfg.MaxOutOfDistributionFraction,
	}
	if op.ValidationErrorOutside != nil {
		r.CellFalsePositiveRate = max(*op.ValidationErrorOutside, MinCellFalsePositiveRate)
	}
	return r, r.Validate()
}
