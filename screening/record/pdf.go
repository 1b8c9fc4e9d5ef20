// Package record turns a stored sample into the records a clinic keeps: a
// readable report (PDF) and a FHIR R4 Bundle. It reads the store and never
// writes it; the capture daemon does not link it.
package record

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // crop sizes
	_ "image/png"
	"io"
	"slices"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"

	"allscreen/screening"
)

// IntendedUse is the report's paragraph on what the result is and is not.
const IntendedUse = "allscreen is a screening aid for trained staff, not a diagnosis. It finds white cells in " +
	"photographed fields of a stained peripheral blood smear and calls each blast or not with a small neural " +
	"network; the sample's verdict follows a fixed rule over those calls. Its classifier was measured on " +
	"laboratories it never trained on and misses many blasts there (see the device's documentation). " +
	"NO BLASTS SEEN does not exclude leukaemia; every ALL SUSPECTED result must be confirmed by a " +
	"haematologist on the slide and by the laboratory's own methods. Only a signed result has been reviewed."

// Images gives a stored image's bytes.
type Images func(screening.ImageRef) ([]byte, error)

// Options says what the report cannot know from the store alone.
type Options struct {
	Now    time.Time // when the report is made
	Device string    // this device, for samples that do not name theirs (stored before identity was kept)
}

// WritePDF writes the sample's report: identity and provenance, the
// device's verdict and the reviewed one with their counts, the reviewer
// and signing time, a gallery of the cells that stand as blasts, the
// history of versions, and the intended use. A report of a version not
// signed says DRAFT on every page.
func WritePDF(w io.Writer, d screening.SampleDetail, imgs Images, opt Options) error {
	if d.ClosedAt == nil {
		return fmt.Errorf("sample %s: %w", d.Code, screening.ErrSampleOpen)
	}
	cur := d.Current()
	signed := cur.Signed()
	var reviewed screening.Verdict
	switch {
	case signed:
		reviewed = *cur.Verdict
	case cur != nil:
		v, err := d.ReviewedVerdict(cur.Calls)
		if err != nil {
			return err
		}
		reviewed = v
	}
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetTitle("allscreen report "+d.Code, true)
	pdf.SetCreator("allscreen", true)
	pdf.SetCreationDate(opt.Now)
	pdf.SetModificationDate(opt.Now)
	tr := pdf.UnicodeTranslatorFromDescriptor("") // cp1252: names outside it print as '?'
	pdf.SetHeaderFunc(func() {
		pdf.SetFont("Helvetica", "B", 9)
		pdf.SetTextColor(90, 90, 90)
		head := "allscreen screening report - sample " + d.Code
		if !signed {
			head += " - DRAFT, NOT SIGNED"
		}
		if d.Research {
			head += " - RESEARCH, NOT FOR PATIENT CARE"
		}
		pdf.CellFormat(0, 5, tr(head), "B", 1, "L", false, 0, "")
		pdf.Ln(3)
		pdf.SetTextColor(0, 0, 0)
	})
	pdf.SetFooterFunc(func() {
		pdf.SetY(-12)
		pdf.SetFont("Helvetica", "", 8)
		pdf.CellFormat(0, 5, fmt.Sprintf("Page %d of {nb} - made %s", pdf.PageNo(), opt.Now.UTC().Format("2006-01-02 15:04 UTC")),
			"", 0, "C", false, 0, "")
	})
	pdf.AliasNbPages("{nb}")
	pdf.AddPage()

	pdf.SetFont("Helvetica", "B", 16)
	pdf.CellFormat(0, 9, tr("Sample "+d.Code), "", 1, "L", false, 0, "")
	row := func(k, v string) {
		pdf.SetFont("Helvetica", "B", 10)
		pdf.CellFormat(48, 6, tr(k), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 10)
		pdf.MultiCell(0, 6, tr(v), "", "L", false)
	}
	or := func(s, none string) string {
		if s == "" {
			return none
		}
		return s
	}
	row("Specimen ID", or(d.SpecimenID, "not recorded"))
	row("Operator", or(d.Operator, "not recorded"))
	row("Device", or(or(d.DeviceID, opt.Device), "not recorded"))
	row("Software version", d.SoftwareVersion)
	row("Model (SHA-256)", d.ModelSHA256)
	row("Captured", fmt.Sprintf("%s to %s (the device's clock, UTC)", d.OpenedAt.UTC().Format("2006-01-02 15:04"),
		d.ClosedAt.UTC().Format("2006-01-02 15:04")))
	row("Clock", clockNote(d.ClockSynchronized))
	row("Fields", fmt.Sprintf("%d accepted of %d captured", d.AcceptedFields, d.SampleSummary.Fields))
	pdf.Ln(3)

	verdict := func(title string, v screening.Verdict, text string) {
		pdf.SetFont("Helvetica", "B", 12)
		pdf.CellFormat(0, 7, tr(title), "", 1, "L", false, 0, "")
		r, g, b := colour(v.Outcome)
		pdf.SetTextColor(r, g, b)
		pdf.SetFont("Helvetica", "B", 13)
		pdf.CellFormat(0, 7, tr(text), "", 1, "L", false, 0, "")
		pdf.SetTextColor(0, 0, 0)
		pdf.SetFont("Helvetica", "", 10)
		pdf.MultiCell(0, 5, tr(fmt.Sprintf("%d white cells, %d called blast, %d uncertain or unlike the training data",
			v.Tally.WhiteCells, v.Tally.Blasts, v.Tally.Uncertain)), "", "L", false)
		for _, reason := range v.Reasons {
			pdf.MultiCell(0, 5, tr("- "+reason), "", "L", false)
		}
		pdf.Ln(2)
	}
	verdict("Device verdict", screening.Verdict{Outcome: d.Outcome, Reasons: d.Reasons, Tally: d.Tally}, d.Verdict)
	switch {
	case cur == nil:
		pdf.SetFont("Helvetica", "B", 12)
		pdf.CellFormat(0, 7, "Reviewed verdict", "", 1, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 10)
		pdf.MultiCell(0, 5, "Not reviewed: no reviewer has signed this sample.", "", "L", false)
		pdf.Ln(2)
	case signed:
		verdict(fmt.Sprintf("Reviewed verdict (version %d, signed)", cur.Version), reviewed, reviewed.Headline())
		row("Signed by", cur.SignedBy)
		row("Signed at", cur.SignedAt.UTC().Format("2006-01-02 15:04 UTC"))
	default:
		verdict(fmt.Sprintf("Reviewed verdict (version %d, DRAFT, not signed)", cur.Version), reviewed, reviewed.Headline())
	}
	if cur != nil && len(cur.Calls) > 0 {
		row("Reviewer's changes", fmt.Sprintf("%d cell(s) reclassified from the device's call", len(cur.Calls)))
	}
	if len(d.Versions) > 1 {
		pdf.Ln(2)
		pdf.SetFont("Helvetica", "B", 11)
		pdf.CellFormat(0, 6, "Versions", "", 1, "L", false, 0, "")
		for _, v := range d.Versions {
			line := fmt.Sprintf("Version %d, by %s at %s", v.Version, v.CreatedBy, v.CreatedAt.UTC().Format("2006-01-02 15:04"))
			if v.AmendReason != "" {
				line += ", amended because: " + v.AmendReason
			}
			if v.Signed() {
				line += fmt.Sprintf("; signed by %s: %s", v.SignedBy, v.Verdict.Headline())
			}
			pdf.SetFont("Helvetica", "", 9)
			pdf.MultiCell(0, 5, tr(line), "", "L", false)
		}
	}

	// The gallery: every cell whose standing call is blast, most suspicious first.
	var blasts []screening.CellDetail
	for _, c := range d.Cells() {
		if c.Standing(callsOf(cur)) == screening.CallBlast {
			blasts = append(blasts, c)
		}
	}
	slices.SortStableFunc(blasts, func(a, b screening.CellDetail) int {
		switch {
		case a.PBlast > b.PBlast:
			return -1
		case a.PBlast < b.PBlast:
			return 1
		}
		return 0
	})
	pdf.Ln(3)
	pdf.SetFont("Helvetica", "B", 12)
	pdf.CellFormat(0, 7, fmt.Sprintf("Cells called blast (%d)", len(blasts)), "", 1, "L", false, 0, "")
	if len(blasts) == 0 {
		pdf.SetFont("Helvetica", "", 10)
		pdf.MultiCell(0, 5, "None.", "", "L", false)
	}
	const side, gap, perRow = 30.0, 4.0, 5
	left, _, _, _ := pdf.GetMargins()
	for i, c := range blasts {
		if i%perRow == 0 {
			if pdf.GetY()+side+12 > 280 {
				pdf.AddPage()
			}
			if i > 0 {
				pdf.SetY(pdf.GetY() + side + 10)
			}
		}
		x, y := left+float64(i%perRow)*(side+gap), pdf.GetY()
		if err := placeImage(pdf, imgs, c.Crop, x, y, side); err != nil {
			pdf.SetXY(x, y)
			pdf.SetFont("Helvetica", "", 8)
			pdf.MultiCell(side, 4, "image missing", "1", "C", false)
		}
		pdf.SetXY(x, y+side+1)
		pdf.SetFont("Helvetica", "", 8)
		pdf.CellFormat(side, 4, fmt.Sprintf("F%d #%d  P=%.2f", c.FieldNumber, c.Number, c.PBlast), "", 2, "L", false, 0, "")
		pdf.SetX(x)
		pdf.CellFormat(side, 4, callNote(c, cur), "", 0, "L", false, 0, "")
		pdf.SetXY(left, y)
	}
	if len(blasts) > 0 {
		pdf.SetY(pdf.GetY() + side + 10)
	}

	pdf.Ln(4)
	pdf.SetFont("Helvetica", "B", 11)
	pdf.CellFormat(0, 6, "Intended use and its limits", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	pdf.MultiCell(0, 4.5, tr(IntendedUse), "", "L", false)
	return pdf.Output(w)
}

// callNote says who made a blast call: the device, or the reviewer.
func callNote(c screening.CellDetail, v *screening.ReviewVersion) string {
	if v != nil {
		if _, ok := v.Calls[c.ID]; ok {
			return "reviewer: blast"
		}
	}
	return "device: blast"
}

func colour(o screening.Outcome) (r, g, b int) {
	switch o {
	case screening.Refer:
		return 180, 0, 0
	case screening.NoBlastsSeen:
		return 0, 110, 0
	}
	return 170, 100, 0
}

// placeImage draws a stored crop into a side x side square, keeping its
// aspect ratio.
func placeImage(pdf *fpdf.Fpdf, imgs Images, ref screening.ImageRef, x, y, side float64) error {
	if imgs == nil {
		return fmt.Errorf("no images")
	}
	b, err := imgs(ref)
	if err != nil {
		return err
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil || cfg.Width == 0 || cfg.Height == 0 {
		return fmt.Errorf("crop %s: unreadable", ref.SHA256)
	}
	kind := map[string]string{"jpg": "JPG", "png": "PNG"}[strings.ToLower(ref.Format)]
	name := ref.SHA256 + "." + ref.Format
	if pdf.GetImageInfo(name) == nil {
		pdf.RegisterImageOptionsReader(name, fpdf.ImageOptions{ImageType: kind}, bytes.NewReader(b))
		if err := pdf.Error(); err != nil {
			pdf.ClearError()
			return err
		}
	}
	w, h := side, side*float64(cfg.Height)/float64(cfg.Width)
	if h > side {
		w, h = side*float64(cfg.Width)/float64(cfg.Height), side
	}
	pdf.ImageOptions(name, x+(side-w)/2, y+(side-h)/2, w, h, false, fpdf.ImageOptions{ImageType: kind}, 0, "")
	return nil
}

// clockNote says whether the capture times can be trusted.
func clockNote(synced *bool) string {
	switch {
	case synced == nil:
		return "not recorded"
	case *synced:
		return "set (synchronized) when the sample started"
	}
	return "NOT known to be set when the sample started: the times may be wrong"
}

// callsOf is a review version's calls (none without a version).
func callsOf(v *screening.ReviewVersion) map[int64]screening.Call {
	if v == nil {
		return nil
	}
	return v.Calls
}
