package device

import (
	"reflect"
	"strings"
	"testing"
)

func TestFit(t *testing.T) {
	cases := []struct {
		name       string
		in         []string
		cols, rows int
		want       []string
	}{
		{"fits", []string{"READY", "Sample K7M2"}, 16, 2, []string{"READY", "Sample K7M2"}},
		{"wraps at spaces", []string{"Field 3: 7 WBC, 2 suspicious"}, 16, 2, []string{"Field 3: 7 WBC,", "2 suspicious"}},
		{"drops bottom lines", []string{"INCONCLUSIVE - REVIEW", "K7M2"}, 16, 2, []string{"INCONCLUSIVE -", "REVIEW"}},
		{"keeps priority order", []string{"a", "b", "c"}, 16, 2, []string{"a", "b"}},
		{"splits only an overlong word", []string{"ok haematologists"}, 8, 4, []string{"ok", "haemato-", "logists"}},
		{"empty line kept as blank", []string{"", "x"}, 16, 2, []string{"", "x"}},
		{"non-ASCII replaced", []string{"µm ok"}, 16, 1, []string{"?m ok"}},
		{"collapses spaces", []string{"  a   b  "}, 16, 1, []string{"a b"}},
		{"no room", []string{"x"}, 1, 1, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Fit(c.in, c.cols, c.rows)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Fit(%q, %d, %d) = %q, want %q", c.in, c.cols, c.rows, got, c.want)
			}
		})
	}
}

// FuzzFit checks the layout promises on any text: never wider or taller
// than the screen, and no word that fits is ever cut.
func FuzzFit(f *testing.F) {
	f.Add("Field 3: 7 WBC, 2 suspicious", 16, 2)
	f.Add("NO BLASTS SEEN in 212 white cells", 18, 4)
	f.Fuzz(func(t *testing.T, s string, cols, rows int) {
		cols, rows = 2+abs(cols)%40, 1+abs(rows)%10
		out := Fit([]string{s}, cols, rows)
		if len(out) > rows {
			t.Fatalf("%d lines for %d rows", len(out), rows)
		}
		for _, l := range out {
			if len(l) > cols {
				t.Fatalf("line %q wider than %d", l, cols)
			}
		}
		if len(out) < rows { // everything was shown: every short word must appear whole
			joined := " " + strings.Join(out, " ") + " "
			for _, w := range strings.Fields(asciiOnly(s)) {
				if len(w) <= cols && !strings.Contains(joined, " "+w+" ") {
					t.Fatalf("word %q cut or lost in %q", w, out)
				}
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -(n + 1)
	}
	return n
}
