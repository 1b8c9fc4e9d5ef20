package appliance

import (
	"strings"
	"testing"
	"time"

	"allscreen/device"
	"allscreen/screening"
)

// TestScreensFitBothDisplays lays every screen out on the 16x2 LCD and the
// 18x4 OLED and checks the words that matter survive whole.
func TestScreensFitBothDisplays(t *testing.T) {
	code := screening.SampleCode(1234)
	field := screening.FieldResult{Sample: screening.Sample{Code: code}, Number: 12, Accepted: true,
		Field: screening.Tally{WhiteCells: 123, Blasts: 45}, Running: screening.Tally{Fields: 11, WhiteCells: 1234}}
	rejected := screening.FieldResult{Sample: screening.Sample{Code: code}, Number: 3, Reject: "Refocus the microscope"}
	empty := screening.FieldResult{Sample: screening.Sample{Code: code}, Number: 7, Accepted: true,
		Running: screening.Tally{Fields: 7, WhiteCells: 20}}
	verdict := func(o screening.Outcome) screening.ClosedSample {
		return screening.ClosedSample{Sample: screening.Sample{Code: code},
			Verdict: screening.Verdict{Outcome: o, Tally: screening.Tally{WhiteCells: 212, Blasts: 9}}}
	}
	incomplete := verdict(screening.Inconclusive)
	incomplete.Verdict.Incomplete = true
	for _, size := range [][2]int{{16, 2}, {18, 4}} {
		cols, rows := size[0], size[1]
		cases := []struct {
			name  string
			lines []string
			want  []string // each must appear whole on one line
		}{
			{"field", screenField(field, cols, rows), []string{"12:", "123 WBC", "45 suspicious"}},
			{"rejected", screenField(rejected, cols, rows), []string{"Refocus the", "microscope"}},
			// A good field without white cells is not a rejected one.
			{"no white cell", screenField(empty, cols, rows), []string{"Field 7:", "move on"}},
			{"refer", screenVerdict(verdict(screening.Refer)), []string{code + " REFER:", "ALL SUSPECTED"}},
			{"no blasts", screenVerdict(verdict(screening.NoBlastsSeen)), []string{code, "NO BLASTS", "SEEN in 212 WBC"}},
			{"review", screenVerdict(verdict(screening.Inconclusive)), []string{code + " REVIEW:", "INCONCLUSIVE"}},
			{"working", screenWorking(code, 12), []string{code + " Field 12"}},
			{"fault", screenFault("No camera: plug in microscope"), []string{"NOT READY", "No camera:"}},
			{"resume", screenResume(screening.Sample{Code: code, OpenedAt: time.Date(2026, 12, 7, 23, 59, 0, 0, time.Local)}, cols, rows),
				[]string{code, "23:59"}},
			{"incomplete", screenVerdict(incomplete), []string{code + " REVIEW:", "INCOMPLETE"}},
			{"notice", screenNotice(cols, rows), []string{"kept", "aside"}},
		}
		if rows >= 4 {
			cases[0].want = append(cases[0].want, "Sample "+code)
			cases[8].want = append(cases[8].want, "Press: continue it", "Hold: close it")
		} else {
			cases[8].want = append(cases[8].want, "Tap:go Hold:end")
		}
		if got := strings.Join(device.Fit(screenField(empty, cols, rows), cols, rows), " "); strings.Contains(got, "reject") {
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
