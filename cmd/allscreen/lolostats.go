package main

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"allscreen/model"
	"allscreen/screening"
)

// The leave-one-laboratory-out figures: per laboratory and seed, the cells'
// calls under the appliance's cell rule, and simulated samples judged by
// screening.Decide, the appliance's verdict rule.

// sampleCells is the size of a simulated sample (the 200 white cells).
const sampleCells = 200

// sampleKinds are the simulated samples: name and blast share.
var sampleKinds = []struct {
	Name  string
	Share float64
}{{"normal", 0}, {"all-5", 0.05}, {"all-20", 0.20}}

type loloResult struct {
	Experiment  string      `json:"experiment"`
	Title       string      `json:"title"`
	Description string      `json:"description"`
	Seeds       []int       `json:"seeds"`
	CellRule    string      `json:"cell_rule"`
	SampleRule  string      `json:"sample_rule"`
	Labs        []labResult `json:"labs"`
}

type labResult struct {
	Lab     string   `json:"lab"`
	Sources []string `json:"sources"`
	// Over seeds; nil where the laboratory has no blasts (or no normal cells).
	Sensitivity *model.Spread `json:"sensitivity,omitempty"`
	Specificity *model.Spread `json:"specificity,omitempty"`
	// ByThreshold: the same by P(blast) and the threshold alone, whatever
	// the model's flags (a model that flags every cell of a new laboratory
	// as out of distribution calls none a blast: its specificity under the
	// rule is 1, and says nothing).
	SensitivityByThreshold *model.Spread `json:"sensitivity_by_threshold,omitempty"`
	SpecificityByThreshold *model.Spread `json:"specificity_by_threshold,omitempty"`
	OOD                    model.Spread  `json:"out_of_distribution_share"`
	AUC                    *model.Spread `json:"roc_auc,omitempty"`
	Uncertain              model.Spread  `json:"uncertain_share"`
	Types                  []typeResult  `json:"types"`
	// Calibration: site calibration on half of the laboratory's normal
	// cells, judged on the other half (nil when too few normal cells).
	Calibration *calibrationResult `json:"calibration,omitempty"`
	// Samples: kind -> outcome -> share over seeds.
	Samples []sampleResult `json:"samples"`
	Seeds   []labSeed      `json:"per_seed"`
}

type typeResult struct {
	Source string `json:"source"`
	Type   string `json:"type"`
	Blast  bool   `json:"blast"`
	N      int    `json:"n"`
	// Correct is the share called right per seed, each the strict way:
	// blasts called blast under the rule (an uncertain blast is missed),
	// normal cells below the threshold (whatever the model's flags).
	Correct model.Spread `json:"correct"`
	// WorstCI is the Wilson 95% interval of the worst seed.
	WorstCI [2]float64 `json:"worst_seed_ci95"`
}

type sampleResult struct {
	Kind         string       `json:"kind"`
	BlastShare   float64      `json:"blast_share"`
	Refer        model.Spread `json:"refer"`
	NoBlastsSeen model.Spread `json:"no_blasts_seen"`
	Inconclusive model.Spread `json:"inconclusive"`
	// ReferWorstCI: Wilson 95% interval of the referred share of the seed
	// whose share is furthest from the wanted answer, over its simulated
	// samples (it covers the simulation's chance, not the cell pool's).
	ReferWorstCI [2]float64 `json:"refer_worst_seed_ci95"`
	N            int        `json:"samples_per_seed"`
}

type labSeed struct {
	Seed           int        `json:"seed"`
	BlastThreshold float64    `json:"blast_threshold"`
	CellFPR        float64    `json:"rule_cell_false_positive_rate"`
	Blasts         int        `json:"blasts"`
	BlastsCalled   int        `json:"blasts_called"`
	SensitivityCI  [2]float64 `json:"sensitivity_ci95"`
	Normal         int        `json:"normal"`
	NormalCalled   int        `json:"normal_called_blast"`
	SpecificityCI  [2]float64 `json:"specificity_ci95"`
	AUC            *float64   `json:"roc_auc,omitempty"`
	Uncertain      int        `json:"uncertain"`
	OOD            int        `json:"out_of_distribution"`
	// by P(blast) >= threshold alone
	BlastsAbove int `json:"blasts_above_threshold"`
	NormalAbove int `json:"normal_above_threshold"`
}

// summariseLOLO turns the folds into the per-laboratory figures.
func summariseLOLO(e *model.Experiment, folds []*model.LabFold, samples int) (*loloResult, error) {
	res := &loloResult{Experiment: e.Name, Title: e.Title, Description: e.Description,
		CellRule: "a cell counts as called blast when P(blast) reaches the model's blast_threshold (chosen on validation cells of the laboratories it trained on) and the model flags it neither uncertain nor out of distribution; an uncertain blast counts as missed",
		SampleRule: fmt.Sprintf("%d cells drawn per simulated sample (a random group, then a random cell of it, so a field's or subject's cells are drawn together as often as the groups allow), judged by screening.Decide with the model's rule (screening.RuleFor, default configuration: refer_alpha %.2f, refer_blasts %d, min_white_cells %d)",
			sampleCells, screening.DefaultRuleConfig.ReferAlpha, screening.DefaultRuleConfig.ReferBlasts, screening.DefaultRuleConfig.MinWhiteCells)}
	byLab := map[string][]*model.LabFold{}
	for _, f := range folds {
		byLab[f.Lab] = append(byLab[f.Lab], f)
		if !slices.Contains(res.Seeds, f.Seed) {
			res.Seeds = append(res.Seeds, f.Seed)
		}
	}
	slices.Sort(res.Seeds)
	for _, lab := range e.Labs() {
		fs := byLab[lab]
		if len(fs) == 0 {
			continue
		}
		sort.Slice(fs, func(i, j int) bool { return fs[i].Seed < fs[j].Seed })
		lr, err := summariseLab(lab, fs, samples)
		if err != nil {
			return nil, err
		}
		res.Labs = append(res.Labs, lr)
	}
	return res, nil
}

func summariseLab(lab string, folds []*model.LabFold, samples int) (labResult, error) {
	lr := labResult{Lab: lab}
	var sens, spec, auc, unc, sensT, specT, ood []float64
	var cals []calibrationSeed
	type key struct{ source, typ string }
	typeVals := map[key][]float64{}
	typeN := map[key]int{}
	typeBlast := map[key]bool{}
	typeWorst := map[key][2]float64{}
	var keys []key
	sampleVals := make([][3][]float64, len(sampleKinds))
	sampleWorst := make([][2]float64, len(sampleKinds))
	sampleWorstV := make([]float64, len(sampleKinds))
	for _, f := range folds {
		rule, err := screening.RuleFor(f.Op, screening.DefaultRuleConfig)
		if err != nil {
			return lr, fmt.Errorf("lolo: %s seed %d: %w", lab, f.Seed, err)
		}
		ls := labSeed{Seed: f.Seed, BlastThreshold: rule.BlastThreshold, CellFPR: rule.CellFalsePositiveRate}
		calls := make([]screening.CellCall, len(f.Cells))
		var pos, neg []float64
		tk, tn := map[key]int{}, map[key]int{}
		for i, c := range f.Cells {
			call := rule.CallCell(model.Prediction{Blast: c.PBlast, Uncertain: c.Uncertain, OutOfDistribution: c.OOD})
			calls[i] = call
			k := key{c.Source, c.Type}
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
			tn[k]++
			typeBlast[k] = c.Blast
			if call.Uncertain {
				ls.Uncertain++
			}
			if call.OutOfDistribution {
				ls.OOD++
			}
			above := float64(c.PBlast) >= rule.BlastThreshold
			if above && c.Blast {
				ls.BlastsAbove++
			} else if above {
				ls.NormalAbove++
			}
			if c.Blast {
				ls.Blasts++
				pos = append(pos, float64(c.PBlast))
				if call.Blast {
					ls.BlastsCalled++
					tk[k]++
				}
			} else {
				ls.Normal++
				neg = append(neg, float64(c.PBlast))
				if call.Blast {
					ls.NormalCalled++
				}
				if float64(c.PBlast) < rule.BlastThreshold {
					tk[k]++ // by the threshold alone: the strict way for normal cells
				}
			}
		}
		for _, k := range keys {
			if tn[k] == 0 {
				continue
			}
			v := float64(tk[k]) / float64(tn[k])
			typeN[k] = tn[k]
			if vs := typeVals[k]; len(vs) == 0 || v < slices.Min(vs) {
				typeWorst[k] = model.Wilson(tk[k], tn[k])
			}
			typeVals[k] = append(typeVals[k], v)
		}
		if ls.Blasts > 0 {
			sens = append(sens, float64(ls.BlastsCalled)/float64(ls.Blasts))
			sensT = append(sensT, float64(ls.BlastsAbove)/float64(ls.Blasts))
			ls.SensitivityCI = model.Wilson(ls.BlastsCalled, ls.Blasts)
		}
		if ls.Normal > 0 {
			spec = append(spec, 1-float64(ls.NormalCalled)/float64(ls.Normal))
			specT = append(specT, 1-float64(ls.NormalAbove)/float64(ls.Normal))
			ls.SpecificityCI = model.Wilson(ls.Normal-ls.NormalCalled, ls.Normal)
		}
		if len(pos) > 0 && len(neg) > 0 {
			a := rocAUC(pos, neg)
			ls.AUC = &a
			auc = append(auc, a)
		}
		unc = append(unc, float64(ls.Uncertain)/float64(max(1, len(f.Cells))))
		ood = append(ood, float64(ls.OOD)/float64(max(1, len(f.Cells))))
		lr.Seeds = append(lr.Seeds, ls)

		// Simulated samples.
		all := func(model.LabCell) bool { return true }
		normal, blast := poolByGroup(f.Cells, calls, false, all), poolByGroup(f.Cells, calls, true, all)
		for ki, counts := range simulate(normal, blast, rule, samples, sampleRNG(lab, f.Seed, 0)) {
			if counts == nil {
				continue
			}
			for o := range counts {
				sampleVals[ki][o] = append(sampleVals[ki][o], float64(counts[o])/float64(samples))
			}
			// the worst seed: most referrals of normal samples, fewest of ALL samples
			v := float64(counts[0]) / float64(samples)
			bad := v
			if sampleKinds[ki].Share > 0 {
				bad = 1 - v
			}
			if len(sampleVals[ki][0]) == 1 || bad > sampleWorstV[ki] {
				sampleWorstV[ki] = bad
				sampleWorst[ki] = model.Wilson(counts[0], samples)
			}
		}
		if c, ok := calibrateFold(lab, f, rule, calls, samples); ok {
			cals = append(cals, c)
		}
	}
	lr.Sensitivity, lr.Specificity, lr.AUC = spreadOrNil(sens), spreadOrNil(spec), spreadOrNil(auc)
	lr.SensitivityByThreshold, lr.SpecificityByThreshold = spreadOrNil(sensT), spreadOrNil(specT)
	lr.Uncertain = model.SpreadOf(unc)
	lr.OOD = model.SpreadOf(ood)
	lr.Calibration = summariseCalibration(cals)
	for _, c := range folds[0].Cells {
		if !slices.Contains(lr.Sources, c.Source) {
			lr.Sources = append(lr.Sources, c.Source)
		}
	}
	for _, k := range keys {
		lr.Types = append(lr.Types, typeResult{Source: k.source, Type: k.typ, Blast: typeBlast[k], N: typeN[k],
			Correct: model.SpreadOf(typeVals[k]), WorstCI: typeWorst[k]})
	}
	for ki, kind := range sampleKinds {
		if len(sampleVals[ki][0]) == 0 {
			continue
		}
		lr.Samples = append(lr.Samples, sampleResult{Kind: kind.Name, BlastShare: kind.Share, N: samples,
			Refer: model.SpreadOf(sampleVals[ki][0]), NoBlastsSeen: model.SpreadOf(sampleVals[ki][1]),
			Inconclusive: model.SpreadOf(sampleVals[ki][2]), ReferWorstCI: sampleWorst[ki]})
	}
	return lr, nil
}

// spreadOrNil summarises v over seeds, nil when there is nothing to summarise.
func spreadOrNil(v []float64) *model.Spread {
	if len(v) == 0 {
		return nil
	}
	s := model.SpreadOf(v)
	return &s
}

// cellPool holds one kind of a laboratory's cells (normal or blast), by
// group, already called by the rule.
type cellPool struct {
	groups [][]screening.CellCall
}

func poolByGroup(cells []model.LabCell, calls []screening.CellCall, blast bool, keep func(model.LabCell) bool) cellPool {
	idx := map[string]int{}
	var p cellPool
	for i, c := range cells {
		if c.Blast != blast || !keep(c) {
			continue
		}
		g, ok := idx[c.Source+"\x00"+c.Group]
		if !ok {
			g = len(p.groups)
			idx[c.Source+"\x00"+c.Group] = g
			p.groups = append(p.groups, nil)
		}
		p.groups[g] = append(p.groups[g], calls[i])
	}
	return p
}

// sampleRNG seeds the simulation of one laboratory, seed and variant.
func sampleRNG(lab string, seed int, variant uint64) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(lab))
	return rand.New(rand.NewPCG(uint64(seed)<<8|variant, h.Sum64()))
}

// simulate draws samples of each kind and counts their outcomes (refer, no
// blasts seen, inconclusive); nil for a kind the pools cannot make.
func simulate(normal, blast cellPool, rule screening.Rule, samples int, rng *rand.Rand) [][]int {
	out := make([][]int, len(sampleKinds))
	for ki, kind := range sampleKinds {
		nb := int(kind.Share*sampleCells + 0.5)
		if len(normal.groups) == 0 || (nb > 0 && len(blast.groups) == 0) {
			continue
		}
		counts := make([]int, 3)
		for range samples {
			var t screening.Tally
			for j := 0; j < sampleCells; j++ {
				p := normal
				if j < nb {
					p = blast
				}
				t = t.Count(p.draw(rng))
			}
			switch screening.Decide(t, rule).Outcome {
			case screening.Refer:
				counts[0]++
			case screening.NoBlastsSeen:
				counts[1]++
			default:
				counts[2]++
			}
		}
		out[ki] = counts
	}
	return out
}

// draw picks a random group, then a random cell of it.
func (p cellPool) draw(rng *rand.Rand) screening.CellCall {
	g := p.groups[rng.IntN(len(p.groups))]
	return g[rng.IntN(len(g))]
}

// rocAUC is the probability that a random positive scores above a random
// negative (ties count half): the Mann-Whitney statistic.
func rocAUC(pos, neg []float64) float64 {
	type sc struct {
		v   float64
		pos bool
	}
	all := make([]sc, 0, len(pos)+len(neg))
	for _, v := range pos {
		all = append(all, sc{v, true})
	}
	for _, v := range neg {
		all = append(all, sc{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	var rankSum float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		r := float64(i+j+1) / 2 // mean 1-based rank of the tie run
		for k := i; k < j; k++ {
			if all[k].pos {
				rankSum += r
			}
		}
		i = j
	}
	np, nn := float64(len(pos)), float64(len(neg))
	return (rankSum - np*(np+1)/2) / (np * nn)
}

// loloText is the terminal summary: one line per laboratory.
func loloText(r *loloResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: leave one laboratory out, seeds %v (mean, worst seed)\n", r.Experiment, r.Seeds)
	fmt.Fprintf(&b, "%-10s %-17s %-17s %-17s %s\n", "left out", "sensitivity", "specificity", "ROC AUC", "uncertain")
	f := func(s *model.Spread) string {
		if s == nil {
			return "-"
		}
		return fmt.Sprintf("%.3f (%.3f)", s.Mean, s.Min)
	}
	for _, l := range r.Labs {
		fmt.Fprintf(&b, "%-10s %-17s %-17s %-17s %.3f\n", l.Lab, f(l.Sensitivity), f(l.Specificity), f(l.AUC), l.Uncertain.Mean)
	}
	return b.String()
}
