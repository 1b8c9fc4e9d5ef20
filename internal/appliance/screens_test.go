package appliance

import (
	"slices"
	"strings"
	"testing"
	"time"

	"allscreen/device"
	"allscreen/screening"
)

// TestScreensFitBothDisplays lays every screen out on the 16x2 LCD and the
// 18x4 OLED and checks the words that matter survive whole.
func TestScreensFitBothDisplays(t *testing.T) {
	// A code with a device prefix (screening.MaxCodePrefix), at the largest
	// sample number before codes grow a character (923,520; 250 years of
	// ten samples a day).
	code := screening.PrefixedSampleCode("K7", 900_000)
	field := screening.FieldResult{Sample: screening.Sample{Code: code}, Number: 12, Accepted: true,
		Field: screening.Tally{WhiteCells: 123, Blasts: 45}, Running: screening.Tally{Fields: 11, WhiteCells: 1234}}
	rejected := screening.FieldResult{Sample: screening.Sample{Code: code}, Number: 3, Reject: "Refocus the microscope"}
	empty := screening.FieldResult{Sample: screening.Sample{Code: code}, Number: 7, Accepted: true,
		Running: screening.Tally{Fields: 7, WhiteCells: 20}}
	verdict := func(o screening.Outcome) screening.ClosedSample {
		return screening.ClosedSample{Sample: screening.Sample{Code: code},
			Verdict: screening.Verdict{Outcome: o, Tally: screening.Tally{WhiteCells: 212, Blasts: 9}}}
	}
	// An inconclusive verdict says why (issue 13): the rule's own short reasons.
	rule := screening.Rule{BlastThreshold: 0.5, CellFalsePositiveRate: 0.01, ReferAlpha: 0.01, ReferBlasts: 2,
		MinWhiteCells: 100, MaxUncertainFraction: 0.25, MaxOutOfDistributionFraction: 0.1}
	tooFew := screening.ClosedSample{Sample: screening.Sample{Code: code}, Verdict: screening.Decide(screening.Tally{WhiteCells: 43}, rule)}
	open := screening.Sample{Code: code}
	incomplete := verdict(screening.Inconclusive)
	incomplete.Verdict.Incomplete = true
	for _, size := range [][2]int{{16, 2}, {18, 4}} {
		cols, rows := size[0], size[1]
		cases := []struct {
			name  string
			lines []string
			want  []string // each must appear whole on one line
		}{
			{"field", screenField(field, 100, cols, rows), []string{"12:", "123 WBC", "45 suspicious"}},
			{"rejected", screenField(rejected, 100, cols, rows), []string{"Refocus the", "microscope"}},
			// A good field without white cells is not a rejected one.
			{"no white cell", screenField(empty, 100, cols, rows), []string{"Field 7:", "move on"}},
			{"refer", screenVerdict(verdict(screening.Refer), cols, rows), []string{code + " REFER:", "ALL SUSPECTED"}},
			{"no blasts", screenVerdict(verdict(screening.NoBlastsSeen), cols, rows), []string{code, "NO BLASTS", "212 WBC"}},
			{"review", screenVerdict(verdict(screening.Inconclusive), cols, rows), []string{code + " REVIEW:", "9 suspicious"}},
			{"review: too few", screenVerdict(tooFew, cols, rows), []string{code + " REVIEW:", "Only 43/100 WBC"}},
			{"idle with progress", screenIdle(&open, screening.Tally{Fields: 3, WhiteCells: 45, Uncertain: 2}, 100, cols, rows), []string{"Sample " + code, "43/100 WBC"}},
			{"next slide", screenNextSlide(cols, rows), []string{"next slide", "press"}},
			{"clock not set", screenReadyClockNotSet(cols, rows), []string{"READY", "clock", "Press"}},
			{"ready", screenIdle(nil, screening.Tally{}, 100, cols, rows), []string{"READY", "Press"}},
			{"working", screenWorking(code, 12), []string{code + " Field 12"}},
			{"fault", screenFault("No camera: plug in microscope"), []string{"NOT READY", "No camera:"}},
			{"resume", screenResume(screening.Sample{Code: code, OpenedAt: time.Date(2026, 12, 7, 23, 59, 0, 0, time.Local)}, cols, rows),
				[]string{code, "23:59"}},
			{"incomplete", screenVerdict(incomplete, cols, rows), []string{code + " REVIEW:", "INCOMPLETE"}},
			{"notice", screenNotice(cols, rows), []string{"kept", "aside"}},
		}
		resume := slices.IndexFunc(cases, func(c struct {
			name  string
			lines []string
			want  []string
		}) bool {
			return c.name == "resume"
		})
		if rows >= 4 {
			cases[0].want = append(cases[0].want, "Sample "+code, "1234/100 WBC")
			cases[resume].want = append(cases[resume].want, "Press: continue it", "Hold: close it")
			cases[5].want = append(cases[5].want, "INCONCLUSIVE")
		} else {
			cases[resume].want = append(cases[resume].want, "Tap:go Hold:end")
		}
		if got := strings.Join(device.Fit(screenField(empty, 100, cols, rows), cols, rows), " "); strings.Contains(got, "reject") {
			t.Errorf("%dx%d: a good field without white cells reads as rejected: %q", cols, rows, got)
		}
		for _, c := range cases {
			got := device.Fit(c.lines, cols, rows)
			for _, w := range c.want {
				found := false
				for _, l := range got {
					found = found || strings.Contains(l, w)
				}
				if !found {
					t.Errorf("%dx%d %s: %q not whole on any line of %q", cols, rows, c.name, w, got)
				}
			}
		}
	}
}
