package appliance

import (
	"fmt"

	"allscreen/screening"
)

// The screens, in priority order (device.Fit drops lines from the bottom).
// Two layouts: the 16x2 LCD (narrow) and the 18x4 OLED (wide). Every screen
// of a sample shows its code on the wide display; the narrow one shows it
// when the sample starts, while a field is analysed and with the verdict.

func narrow(cols, rows int) bool { return cols < 18 || rows < 4 }

func screenStarting() []string { return []string{"allscreen", "Self-test..."} }

func screenIdle(smp *screening.Sample, t screening.Tally, min, cols, rows int) []string {
	if smp == nil && narrow(cols, rows) {
		return []string{"READY", "Press to start"} // "Press: new sample" is 17 columns
	}
	if smp == nil {
		return []string{"READY", "Press: new sample"}
	}
	return []string{"Sample " + smp.Code, progress(t, min), "Press: next field"}
}

// screenReadyClockNotSet is READY on a device whose clock is not known to
// be set (no real-time clock, no network): results would carry wrong times.
func screenReadyClockNotSet(cols, rows int) []string {
	if narrow(cols, rows) {
		return []string{"READY: set clock", "Press to start"}
	}
	return []string{"READY", "Press: new sample", "Set the clock:", "times may be wrong"}
}

// progress is the sample's count toward the verdict's: confidently
// classified white cells of the min NO BLASTS SEEN needs ("43/100 WBC").
func progress(t screening.Tally, min int) string {
	if min <= 0 {
		return fmt.Sprintf("%d WBC", t.Confident())
	}
	return fmt.Sprintf("%d/%d WBC", t.Confident(), min)
}

// screenNextSlide follows a verdict: the press after it asks for the next
// slide instead of starting a sample on the one still under the lens.
func screenNextSlide(cols, rows int) []string {
	if narrow(cols, rows) {
		return []string{"Load next slide,", "then press"}
	}
	return []string{"Done. Load the", "next slide, then", "press to start it"}
}

func screenWorking(code string, field int) []string {
	if code == "" {
		return []string{"New sample", "Analysing..."}
	}
	return []string{fmt.Sprintf("%s Field %d", code, field), "Analysing..."}
}

func screenField(r screening.FieldResult, min, cols, rows int) []string {
	if narrow(cols, rows) {
		if !r.Accepted {
			// The reason is what the technician acts on: it goes first.
			return []string{r.Reject, fmt.Sprintf("Field %d rejected", r.Number)}
		}
		if r.Field.WhiteCells == 0 {
			// A good field with no white cell in it: nothing is wrong,
			// unlike a rejected one; the technician moves on.
			return []string{fmt.Sprintf("Field %d: no WBC", r.Number), "Good: move on"}
		}
		// "Field 12: 123 WBC," is 18 characters: drop what a 16-column
		// line cannot hold, the punctuation first, never a number.
		head := fmt.Sprintf("Field %d: %d WBC,", r.Number, r.Field.WhiteCells)
		for _, f := range []string{"Field %d: %d WBC", "Field %d:%d WBC", "#%d: %d WBC"} {
			if len(head) <= cols {
				break
			}
			head = fmt.Sprintf(f, r.Number, r.Field.WhiteCells)
		}
		return []string{head, fmt.Sprintf("%d suspicious", r.Field.Blasts)}
	}
	// Split where a person reads a pause, so the count stays with its noun.
	lines := []string{fmt.Sprintf("Field %d: %d WBC,", r.Number, r.Field.WhiteCells), fmt.Sprintf("%d suspicious", r.Field.Blasts)}
	switch {
	case !r.Accepted:
		lines = []string{fmt.Sprintf("Field %d rejected:", r.Number), r.Reject}
	case r.Field.WhiteCells == 0:
		lines = []string{fmt.Sprintf("Field %d: no white", r.Number), "cell here: move on"}
	}
	return append([]string{"Sample " + r.Sample.Code}, append(lines, progress(r.Running, min))...)
}

// screenNotice tells that the results database was damaged and set aside
// at power-on (the log and `allscreen results` say where it is).
func screenNotice(cols, rows int) []string {
	if narrow(cols, rows) {
		return []string{"Old results kept", "aside: Press=OK"}
	}
	return []string{"Results database", "damaged: kept", "aside, see log.", "Press: OK"}
}

// screenResume asks about a sample found open at power-on: it may be the
// previous patient's slide.
func screenResume(smp screening.Sample, cols, rows int) []string {
	since := smp.OpenedAt.Local().Format("15:04")
	if narrow(cols, rows) {
		return []string{smp.Code + " at " + since, "Tap:go Hold:end"}
	}
	return []string{"Sample " + smp.Code, "open since " + since + ":", "Press: continue it", "Hold: close it"}
}

func screenVerdict(c screening.ClosedSample, cols, rows int) []string {
	v := c.Verdict
	if v.Incomplete && v.Outcome != screening.Refer {
		return []string{c.Code + " REVIEW:", "INCOMPLETE", fmt.Sprintf("%d WBC,", v.Tally.WhiteCells), fmt.Sprintf("%d suspicious", v.Tally.Blasts)}
	}
	switch v.Outcome {
	case screening.Refer:
		return []string{c.Code + " REFER:", "ALL SUSPECTED", fmt.Sprintf("%d blasts in %d WBC", v.Tally.Blasts, v.Tally.Confident())}
	case screening.NoBlastsSeen:
		if narrow(cols, rows) {
			return []string{"NO BLASTS SEEN", fmt.Sprintf("%s: %d WBC", c.Code, v.Tally.Confident())}
		}
		return []string{c.Code + " NO BLASTS", fmt.Sprintf("SEEN in %d WBC", v.Tally.Confident())}
	}
	// Why, in words: on the 16x2 the first reason replaces the word
	// INCONCLUSIVE (REVIEW and the lights say it); the OLED has both.
	if len(v.Short) == 0 {
		v.Short = []string{fmt.Sprintf("%d suspicious", v.Tally.Blasts)}
	}
	if narrow(cols, rows) {
		return []string{c.Code + " REVIEW:", v.Short[0]}
	}
	return append([]string{c.Code + " REVIEW:", "INCONCLUSIVE"}, v.Short...)
}

func screenFault(short string) []string { return []string{"NOT READY", short} }
