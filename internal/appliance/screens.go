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

func screenIdle(smp *screening.Sample, t screening.Tally) []string {
	if smp == nil {
		return []string{"READY", "Press: new sample"}
	}
	return []string{"Sample " + smp.Code, fmt.Sprintf("%d fields, %d WBC", t.Fields, t.WhiteCells), "Press: next field"}
}

func screenWorking(code string, field int) []string {
	if code == "" {
		return []string{"New sample", "Analysing..."}
	}
	return []string{fmt.Sprintf("%s Field %d", code, field), "Analysing..."}
}

func screenField(r screening.FieldResult, cols, rows int) []string {
	head := fmt.Sprintf("Field %d: %d WBC, %d suspicious", r.Number, r.Field.WhiteCells, r.Field.Blasts)
	if !r.Accepted {
		head = fmt.Sprintf("Field %d: %s", r.Number, r.Reject)
	}
	if narrow(cols, rows) {
		return []string{head}
	}
	return []string{"Sample " + r.Sample.Code, head, fmt.Sprintf("%d fields, %d WBC", r.Running.Fields, r.Running.WhiteCells)}
}

func screenVerdict(c screening.ClosedSample) []string {
	v := c.Verdict
	switch v.Outcome {
	case screening.Refer:
		return []string{c.Code + " REFER:", "ALL SUSPECTED", fmt.Sprintf("%d blasts in %d WBC", v.Tally.Blasts, v.Tally.Confident())}
	case screening.NoBlastsSeen:
		return []string{fmt.Sprintf("%s NO BLASTS SEEN in %d WBC", c.Code, v.Tally.Confident())}
	}
	return []string{c.Code + " REVIEW:", "INCONCLUSIVE", fmt.Sprintf("%d WBC, %d suspicious", v.Tally.WhiteCells, v.Tally.Blasts)}
}

func screenFault(short string) []string { return []string{"NOT READY", short} }
