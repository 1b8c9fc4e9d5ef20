package station

import (
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"time"

	"allscreen/screening"
)

var funcs = template.FuncMap{
	"when": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"at":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"pct":  func(p float64) string { return fmt.Sprintf("%.2f", p) },
	"img":  func(r screening.ImageRef) string { return "/images/" + r.SHA256 + "." + r.Format },
	"list": func(s ...string) []string { return s },
	"callName": func(c screening.Call) string {
		if c == screening.DeviceCall {
			return "device"
		}
		return string(c)
	},
}

// listRow is one sample on the list page.
type listRow struct {
	screening.SampleSummary
	Review screening.ReviewState
	State  string // open, unreviewed, draft, signed
}

// filters of the sample list, from the query string.
type filters struct {
	Verdict, State, From, To string
}

func (f filters) keep(row listRow) bool {
	if f.Verdict != "" && string(row.Outcome) != f.Verdict {
		return false
	}
	if f.State != "" && row.State != f.State {
		return false
	}
	day := row.OpenedAt.UTC().Format("2006-01-02")
	return (f.From == "" || day >= f.From) && (f.To == "" || day <= f.To)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, u *screening.User) {
	q := r.URL.Query()
	f := filters{Verdict: q.Get("verdict"), State: q.Get("state"), From: q.Get("from"), To: q.Get("to")}
	all, err := s.store.Samples(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	states, err := s.store.ReviewStates(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var rows []listRow
	for i := len(all) - 1; i >= 0; i-- { // newest first
		row := listRow{SampleSummary: all[i], Review: states[all[i].ID]}
		switch {
		case row.ClosedAt == nil:
			row.State = "open"
		case row.Review.Version == 0:
			row.State = "unreviewed"
		case row.Review.Signed:
			row.State = "signed"
		default:
			row.State = "draft"
		}
		if f.keep(row) {
			rows = append(rows, row)
		}
	}
	events, err := s.store.Events(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	pending := map[string]any{}
	if sp, op, at, ok, err := s.store.PendingSpecimen(r.Context()); err == nil && ok {
		pending = map[string]any{"Specimen": sp, "Operator": op, "At": at}
	}
	s.render(w, http.StatusOK, "list.html", map[string]any{"User": u, "CSRF": csrfOf(r), "Rows": rows,
		"Filter": f, "Total": len(all), "Pending": pending, "Now": s.opt.Now(), "ClockNotSet": s.opt.ClockNotSet(),
		"Reviewer": u.Role == screening.RoleReviewer, "Events": events})
}

// galleryCell is one cell of the gallery, with the call that stands.
type galleryCell struct {
	screening.CellDetail
	Call  screening.Call // the reviewer's, "" when the device's stands
	Class string         // css class: the call that stands (screening.CellDetail.Standing)
}

func (s *Server) sample(w http.ResponseWriter, r *http.Request, u *screening.User) {
	d, err := s.store.SampleDetail(r.Context(), r.PathValue("code"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	cur := d.Current()
	calls := map[int64]screening.Call{}
	if cur != nil {
		calls = cur.Calls
	}
	var reviewed *screening.Verdict
	if d.Rule != nil {
		if cur.Signed() {
			reviewed = cur.Verdict
		} else if v, err := d.ReviewedVerdict(calls); err == nil {
			reviewed = &v
		}
	}
	var gallery []galleryCell
	classes := map[int64]string{}
	for _, c := range d.Cells() {
		g := galleryCell{CellDetail: c, Call: calls[c.ID], Class: string(c.Standing(calls))}
		classes[c.ID] = g.Class
		gallery = append(gallery, g)
	}
	// Most suspicious first; ties by field and cell number, so the order
	// never changes between loads.
	slices.SortStableFunc(gallery, func(a, b galleryCell) int { return cmp.Compare(b.PBlast, a.PBlast) })
	s.render(w, http.StatusOK, "sample.html", map[string]any{
		"User": u, "CSRF": csrfOf(r), "S": d, "Current": cur, "Reviewed": reviewed,
		"Gallery": gallery, "Classes": classes,
		"Reviewer": u.Role == screening.RoleReviewer, "Closed": d.Rule != nil,
		"Signed": cur.Signed(),
	})
}
