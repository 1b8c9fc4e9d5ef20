package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Report holds classification metrics in the JSON shape `allscreen eval
// --json` prints. Rows of Confusion are true labels, columns predicted.
type Report struct {
	Labels      []string              `json:"labels"`
	N           int                   `json:"n"`
	Accuracy    float64               `json:"accuracy"`
	AccuracyCI  [2]float64            `json:"accuracy_ci"`
	CIMethod    string                `json:"ci_method"`
	PerClass    map[string]ClassStats `json:"per_class"`
	MacroAvg    Averages              `json:"macro_avg"`
	WeightedAvg Averages              `json:"weighted_avg"`
	Confusion   [][]int               `json:"confusion"`
	// Binary tasks: the positive label's recall and the negative's.
	Positive      string      `json:"positive,omitempty"`
	Sensitivity   *float64    `json:"sensitivity,omitempty"`
	SensitivityCI *[2]float64 `json:"sensitivity_ci,omitempty"`
	Specificity   *float64    `json:"specificity,omitempty"`
	SpecificityCI *[2]float64 `json:"specificity_ci,omitempty"`
	// GroupBootstrapCI is a 95% interval for accuracy from resampling whole
	// groups (fields): cells of one field are not independent, so it is the
	// honester of the two intervals. Empty without groups.
	GroupBootstrapCI *[2]float64 `json:"accuracy_ci_group_bootstrap,omitempty"`
	Groups           int         `json:"groups,omitempty"`
}

// ClassStats are one label's figures.
type ClassStats struct {
	Precision   float64    `json:"precision"`
	Recall      float64    `json:"recall"`
	F1          float64    `json:"f1"`
	Support     int        `json:"support"`
	PrecisionCI [2]float64 `json:"precision_ci"`
	RecallCI    [2]float64 `json:"recall_ci"`
}

// Averages are the macro (every label counts the same) or support-weighted
// mean of the per-label figures.
type Averages struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
}

// Outcome is one evaluated item: its true and predicted label indices and
// its group (for the group bootstrap).
type Outcome struct {
	True, Pred int
	Group      string
}

// Score computes a report. positive is the positive label of a binary task
// ("" for none).
func Score(labels []string, outs []Outcome, positive string) Report {
	k := len(labels)
	r := Report{Labels: labels, N: len(outs), PerClass: map[string]ClassStats{}, CIMethod: "Wilson score, 95%"}
	r.Confusion = make([][]int, k)
	for i := range r.Confusion {
		r.Confusion[i] = make([]int, k)
	}
	correct := 0
	for _, o := range outs {
		if o.True < 0 || o.True >= k || o.Pred < 0 || o.Pred >= k {
			continue
		}
		r.Confusion[o.True][o.Pred]++
		if o.True == o.Pred {
			correct++
		}
	}
	r.Accuracy = ratio(correct, len(outs))
	r.AccuracyCI = Wilson(correct, len(outs))
	for c, l := range labels {
		tp, support, predicted := r.Confusion[c][c], 0, 0
		for j := 0; j < k; j++ {
			support += r.Confusion[c][j]
			predicted += r.Confusion[j][c]
		}
		s := ClassStats{Precision: ratio(tp, predicted), Recall: ratio(tp, support), Support: support,
			PrecisionCI: Wilson(tp, predicted), RecallCI: Wilson(tp, support)}
		if s.Precision+s.Recall > 0 {
			s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
		}
		r.PerClass[l] = s
		r.MacroAvg.Precision += s.Precision / float64(k)
		r.MacroAvg.Recall += s.Recall / float64(k)
		r.MacroAvg.F1 += s.F1 / float64(k)
		if len(outs) > 0 {
			w := float64(support) / float64(len(outs))
			r.WeightedAvg.Precision += s.Precision * w
			r.WeightedAvg.Recall += s.Recall * w
			r.WeightedAvg.F1 += s.F1 * w
		}
	}
	if p := slices.Index(labels, positive); p >= 0 && k == 2 {
		neg := 1 - p
		r.Positive = positive
		sens, spec := r.PerClass[labels[p]].Recall, r.PerClass[labels[neg]].Recall
		sci, pci := r.PerClass[labels[p]].RecallCI, r.PerClass[labels[neg]].RecallCI
		r.Sensitivity, r.SensitivityCI, r.Specificity, r.SpecificityCI = &sens, &sci, &spec, &pci
	}
	groups := map[string][]Outcome{}
	for _, o := range outs {
		if o.Group != "" {
			groups[o.Group] = append(groups[o.Group], o)
		}
	}
	if len(groups) > 1 && len(groups) < len(outs) {
		ci := groupBootstrap(groups, 2000)
		r.GroupBootstrapCI, r.Groups = &ci, len(groups)
	}
	return r
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Wilson is the Wilson score 95% interval for k successes in n trials
// (sensible at 0 and n, unlike the normal approximation).
func Wilson(k, n int) [2]float64 {
	if n == 0 {
		return [2]float64{0, 1}
	}
	const z = 1.959963984540054
	p := float64(k) / float64(n)
	nf := float64(n)
	den := 1 + z*z/nf
	centre := (p + z*z/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / den
	return [2]float64{math.Max(0, centre-half), math.Min(1, centre+half)}
}

// groupBootstrap resamples whole groups with replacement (seeded, so a
// report is reproducible) and returns the 2.5th and 97.5th percentiles of
// accuracy.
func groupBootstrap(groups map[string][]Outcome, reps int) [2]float64 {
	keys := make([]string, 0, len(groups))
	for g := range groups {
		keys = append(keys, g)
	}
	slices.Sort(keys)
	rng := rand.New(rand.NewPCG(1, 2))
	accs := make([]float64, reps)
	for i := range accs {
		c, n := 0, 0
		for range keys {
			for _, o := range groups[keys[rng.IntN(len(keys))]] {
				n++
				if o.True == o.Pred {
					c++
				}
			}
		}
		accs[i] = ratio(c, n)
	}
	slices.Sort(accs)
	return [2]float64{accs[int(0.025*float64(reps))], accs[int(0.975*float64(reps))-1]}
}

// ConfusionText renders the confusion matrix for a terminal.
func (r Report) ConfusionText() string {
	w := 8
	for _, l := range r.Labels {
		w = max(w, len(l)+2)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%*s", w+6, "predicted ->")
	b.WriteString("\n")
	fmt.Fprintf(&b, "%-*s", w+6, "true")
	for _, l := range r.Labels {
		fmt.Fprintf(&b, "%*s", w, l)
	}
	b.WriteString("\n")
	for i, l := range r.Labels {
		fmt.Fprintf(&b, "%-*s", w+6, l)
		for j := range r.Labels {
			fmt.Fprintf(&b, "%*d", w, r.Confusion[i][j])
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Text renders the report as a table.
func (r Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "accuracy %.4f (95%% CI %.4f-%.4f, %s) on %d", r.Accuracy, r.AccuracyCI[0], r.AccuracyCI[1], r.CIMethod, r.N)
	if r.GroupBootstrapCI != nil {
		fmt.Fprintf(&b, "; group bootstrap CI %.4f-%.4f over %d groups", r.GroupBootstrapCI[0], r.GroupBootstrapCI[1], r.Groups)
	}
	b.WriteString("\n")
	if r.Sensitivity != nil {
		fmt.Fprintf(&b, "sensitivity (%s) %.4f (%.4f-%.4f), specificity %.4f (%.4f-%.4f)\n", r.Positive, *r.Sensitivity,
			r.SensitivityCI[0], r.SensitivityCI[1], *r.Specificity, r.SpecificityCI[0], r.SpecificityCI[1])
	}
	fmt.Fprintf(&b, "%-18s %9s %9s %9s %8s\n", "label", "precision", "recall", "f1", "support")
	for _, l := range r.Labels {
		s := r.PerClass[l]
		fmt.Fprintf(&b, "%-18s %9.4f %9.4f %9.4f %8d\n", l, s.Precision, s.Recall, s.F1, s.Support)
	}
	fmt.Fprintf(&b, "%-18s %9.4f %9.4f %9.4f %8d\n", "macro avg", r.MacroAvg.Precision, r.MacroAvg.Recall, r.MacroAvg.F1, r.N)
	fmt.Fprintf(&b, "%-18s %9.4f %9.4f %9.4f %8d\n", "weighted avg", r.WeightedAvg.Precision, r.WeightedAvg.Recall, r.WeightedAvg.F1, r.N)
	b.WriteString(r.ConfusionText())
	return b.String()
}

// Spread summarises one figure over several seeds.
type Spread struct {
	Values []float64 `json:"values"`
	Mean   float64   `json:"mean"`
	SD     float64   `json:"sd"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
}

// SpreadOf summarises values (sample standard deviation).
func SpreadOf(v []float64) Spread {
	s := Spread{Values: v}
	if len(v) == 0 {
		return s
	}
	s.Min, s.Max = v[0], v[0]
	for _, x := range v {
		s.Mean += x / float64(len(v))
		s.Min, s.Max = math.Min(s.Min, x), math.Max(s.Max, x)
	}
	if len(v) > 1 {
		for _, x := range v {
			s.SD += (x - s.Mean) * (x - s.Mean)
		}
		s.SD = math.Sqrt(s.SD / float64(len(v)-1))
	}
	return s
}
