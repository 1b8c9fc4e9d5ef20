package device

import "strings"

// Fit lays out lines on a cols x rows text screen. Each line is wrapped at
// spaces so that no word is cut; a single word wider than the screen (rare:
// the daemon's words are short) is split with a hyphen rather than lost.
// Lines that do not fit are left off the bottom, so callers put what matters
// most first. Characters outside printable ASCII become '?' because both
// displays' fonts are ASCII.
func Fit(lines []string, cols, rows int) []string {
	if cols < 2 || rows < 1 {
		return nil
	}
	var out []string
	for _, l := range lines {
		for _, w := range wrap(asciiOnly(l), cols) {
			if len(out) == rows {
				return out
			}
			out = append(out, w)
		}
	}
	return out
}

func wrap(s string, cols int) []string {
	words := strings.Fields(s)
	if len(words) == 0 {
		return []string{""}
	}
	var out []string
	cur := ""
	for _, w := range words {
		for len(w) > cols {
			// Only a word wider than the whole screen is split.
			if cur != "" {
				out = append(out, cur)
				cur = ""
			}
			out = append(out, w[:cols-1]+"-")
			w = w[cols-1:]
		}
		switch {
		case cur == "":
			cur = w
		case len(cur)+1+len(w) <= cols:
			cur += " " + w
		default:
			out = append(out, cur)
			cur = w
		}
	}
	return append(out, cur)
}

func asciiOnly(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n':
			b = append(b, ' ')
		case r < 0x20 || r > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, byte(r))
		}
	}
	return string(b)
}
