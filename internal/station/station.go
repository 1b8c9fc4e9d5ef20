// Package station is the review station: a small web application, served
// by its own process on the device, where a reviewer sees every cell the
// device called, reclassifies any of them, and signs the result (issue 13).
// It holds no network of its own beyond its listener, loads nothing from
// outside its binary, and keeps its state in the capture daemon's store.
//
// Every route but /health and the login page needs a session; every POST
// needs the session's CSRF token; reviewer actions need the reviewer role.
package station

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"allscreen/screening"
	"allscreen/screening/record"
)

// Options configures a Server. Zero values take the defaults.
type Options struct {
	Now    func() time.Time
	Logger *slog.Logger
	// Secure marks the session cookie Secure (set it when served over TLS).
	Secure bool
	// Device names this device in reports (screening.DeviceID()).
	Device string
	// ExportDir is where the USB stick is mounted (config review.export_dir).
	ExportDir string
	// ClockNotSet says whether the device's clock is not known to be set
	// (default: neither synchronized nor set here since this boot).
	ClockNotSet func() bool
	// OnStorageFault is called when the store can no longer be written
	// (its database replaced, removed or failing): the station should
	// then end, so its service manager starts it again on the database the
	// daemon now keeps. Nil: nothing.
	OnStorageFault func(error)
}

// Server is the review station's HTTP handler.
type Server struct {
	store    *screening.Store
	opt      Options
	sessions *sessions
	throttle *throttle
	pages    *template.Template
	mux      *http.ServeMux
}

// access is who may use a route.
type access int

const (
	public access = iota
	anyUser
	reviewerOnly
)

// route is one entry of the station's table; the security tests walk it, so
// a route added here is tested for sessions, roles and CSRF at once.
type route struct {
	method, pattern string
	access          access
	handle          func(*Server, http.ResponseWriter, *http.Request, *screening.User)
}

var routes = []route{
	{"GET", "/health", public, (*Server).health},
	{"GET", "/login", public, (*Server).loginPage},
	{"POST", "/login", public, (*Server).login},
	{"POST", "/logout", anyUser, (*Server).logout},
	{"GET", "/{$}", anyUser, (*Server).list},
	{"GET", "/samples/{code}", anyUser, (*Server).sample},
	{"GET", "/images/{name}", anyUser, (*Server).image},
	{"GET", "/samples/{code}/report.pdf", anyUser, (*Server).report},
	{"GET", "/samples/{code}/fhir.json", anyUser, (*Server).fhir},
	{"POST", "/export", anyUser, (*Server).export},
	{"POST", "/clock", reviewerOnly, (*Server).clock},
	{"POST", "/next", anyUser, (*Server).next},
	{"POST", "/samples/{code}/specimen", anyUser, (*Server).specimen},
	{"POST", "/samples/{code}/cells/{cell}", reviewerOnly, (*Server).reclassify},
	{"POST", "/samples/{code}/sign", reviewerOnly, (*Server).sign},
	{"POST", "/samples/{code}/amend", reviewerOnly, (*Server).amend},
}

//go:embed templates/*.html
var templateFS embed.FS

// New returns the station over an open store.
func New(store *screening.Store, opt Options) *Server {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.ClockNotSet == nil {
		opt.ClockNotSet = func() bool { return !screening.ClockKnownSet(store.Dir()) }
	}
	s := &Server{store: store, opt: opt,
		sessions: &sessions{now: opt.Now, m: map[string]*session{}},
		throttle: &throttle{now: opt.Now, m: map[string]*strikes{}},
		pages:    template.Must(template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")),
		mux:      http.NewServeMux(),
	}
	for _, r := range routes {
		s.mux.Handle(r.method+" "+r.pattern, s.guard(r))
	}
	return s
}

// ServeHTTP serves the station with its security headers on every answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	s.mux.ServeHTTP(w, r)
}

// guard checks the session, the role and, on a POST, the CSRF token, before
// the route's handler runs.
func (s *Server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		}
		if rt.access == public {
			rt.handle(s, w, r, nil)
			return
		}
		c, err := r.Cookie(cookieName)
		var sess session
		ok := err == nil
		if ok {
			sess, ok = s.sessions.get(c.Value)
		}
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "Log in first.", http.StatusForbidden)
			return
		}
		u, err := s.store.UserByID(r.Context(), sess.userID)
		if err != nil {
			s.sessions.drop(c.Value)
			http.Error(w, "Log in again: "+err.Error(), http.StatusForbidden)
			return
		}
		if r.Method == http.MethodPost && !sameToken(r.PostFormValue("csrf"), sess.csrf) {
			http.Error(w, "This form is stale or came from another site: reload the page and try again.", http.StatusForbidden)
			return
		}
		if rt.access == reviewerOnly && u.Role != screening.RoleReviewer {
			http.Error(w, "Only a reviewer may do this.", http.StatusForbidden)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), csrfKey{}, sess.csrf))
		rt.handle(s, w, r, &u)
	})
}

type csrfKey struct{}

func csrfOf(r *http.Request) string { s, _ := r.Context().Value(csrfKey{}).(string); return s }

func (s *Server) health(w http.ResponseWriter, r *http.Request, _ *screening.User) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, err := s.store.ReviewStates(r.Context()); err != nil {
		http.Error(w, "store unreadable", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	var b strings.Builder
	if err := s.pages.ExecuteTemplate(&b, name, data); err != nil {
		s.opt.Logger.Error("render", "page", name, "err", err)
		http.Error(w, "page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprint(w, b.String())
}

// fail answers a failed action in words: the workflow's own errors as a
// conflict, a storage fault as unavailable.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, screening.ErrNoSample), errors.Is(err, screening.ErrNoCell):
		status = http.StatusNotFound
	case errors.Is(err, screening.ErrNoStick):
		status = http.StatusConflict
	case errors.Is(err, screening.ErrBadSpecimen), errors.Is(err, screening.ErrBadClockTime):
		status = http.StatusBadRequest
	case errors.Is(err, screening.ErrSigned), errors.Is(err, screening.ErrNotSigned), errors.Is(err, screening.ErrSampleOpen):
		status = http.StatusConflict
	case errors.Is(err, screening.ErrStorageFault):
		status = http.StatusServiceUnavailable
		if s.opt.OnStorageFault != nil {
			s.opt.OnStorageFault(err)
		}
	case errors.Is(err, screening.ErrStorageBusy), errors.Is(err, screening.ErrStorageFull):
		status = http.StatusServiceUnavailable
	}
	s.opt.Logger.Warn("request failed", "path", r.URL.Path, "err", err)
	s.render(w, status, "error.html", map[string]any{"Message": err.Error(), "Back": r.Referer()})
}

// remoteIP is the client's address without its port, the login
// throttle's second key.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, _ *screening.User) {
	s.render(w, http.StatusOK, "login.html", map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ *screening.User) {
	name, pw := r.PostFormValue("name"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	ip := remoteIP(r)
	if d := max(s.throttle.wait("name:"+name), s.throttle.wait("ip:"+ip)); d > 0 {
		s.render(w, http.StatusTooManyRequests, "login.html", map[string]any{"Next": next, "Name": name,
			"Error": fmt.Sprintf("Too many failed logins: wait %d s and try again.", int(d.Seconds()+0.999))})
		return
	}
	u, err := s.store.Authenticate(r.Context(), name, pw)
	if err != nil {
		s.throttle.fail("name:" + name)
		s.throttle.fail("ip:" + ip)
		if errors.Is(err, screening.ErrBadLogin) {
			s.store.Audit(r.Context(), name, "login-failed", "", "from "+ip)
		}
		s.render(w, http.StatusUnauthorized, "login.html", map[string]any{"Next": next, "Name": name, "Error": err.Error()})
		return
	}
	s.throttle.clear("name:" + name)
	s.throttle.clear("ip:" + ip)
	if err := s.store.Audit(r.Context(), u.Name, "login", "", "from "+ip); err != nil {
		s.fail(w, r, err)
		return
	}
	token, _ := s.sessions.create(u.ID)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/", HttpOnly: true,
		Secure: s.opt.Secure, SameSite: http.SameSiteStrictMode, MaxAge: int(maxLifetime.Seconds())})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ *screening.User) {
	if c, err := r.Cookie(cookieName); err == nil {
		s.sessions.drop(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.opt.Secure, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) image(w http.ResponseWriter, r *http.Request, _ *screening.User) {
	ref, ok := screening.ParseImageRef(r.PathValue("name"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	f, err := s.store.OpenImage(ref)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", map[string]string{"jpg": "image/jpeg", "png": "image/png"}[ref.Format])
	// Named by content: the bytes behind a name never change.
	w.Header().Set("Cache-Control", "private, max-age=31536000, immutable")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func (s *Server) reclassify(w http.ResponseWriter, r *http.Request, u *screening.User) {
	code := r.PathValue("code")
	cell, err := strconv.ParseInt(r.PathValue("cell"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	call, err := screening.ParseCall(r.PostFormValue("call"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.store.SetCall(r.Context(), code, cell, call, u.Name); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/samples/"+url.PathEscape(code)+"#cell-"+strconv.FormatInt(cell, 10), http.StatusSeeOther)
}

func (s *Server) sign(w http.ResponseWriter, r *http.Request, u *screening.User) {
	code := r.PathValue("code")
	key := "pin:" + u.Name
	if d := s.throttle.wait(key); d > 0 {
		s.fail(w, r, fmt.Errorf("too many wrong PINs: wait %d s", int(d.Seconds()+0.999)))
		return
	}
	if !strings.EqualFold(strings.TrimSpace(r.PostFormValue("name")), u.Name) {
		s.fail(w, r, fmt.Errorf("sign as yourself: you are logged in as %s", u.Name))
		return
	}
	if err := s.store.CheckPIN(r.Context(), u.ID, r.PostFormValue("pin")); err != nil {
		s.throttle.fail(key)
		s.store.Audit(r.Context(), u.Name, "sign-refused", code, "wrong PIN")
		s.fail(w, r, err)
		return
	}
	s.throttle.clear(key)
	if _, err := s.store.Sign(r.Context(), code, u.Name); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/samples/"+url.PathEscape(code), http.StatusSeeOther)
}

func (s *Server) amend(w http.ResponseWriter, r *http.Request, u *screening.User) {
	code := r.PathValue("code")
	if err := s.store.Amend(r.Context(), code, u.Name, r.PostFormValue("reason")); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/samples/"+url.PathEscape(code), http.StatusSeeOther)
}

// report serves the sample's PDF report (DRAFT on every page until signed).
func (s *Server) report(w http.ResponseWriter, r *http.Request, _ *screening.User) {
	s.download(w, r, "application/pdf", ".pdf", func(d screening.SampleDetail, opt record.Options) ([]byte, error) {
		var b bytes.Buffer
		err := record.WritePDF(&b, d, s.store.ReadImage, opt)
		return b.Bytes(), err
	})
}

// fhir serves the sample's FHIR R4 Bundle.
func (s *Server) fhir(w http.ResponseWriter, r *http.Request, _ *screening.User) {
	s.download(w, r, "application/fhir+json", ".fhir.json", record.FHIRBundle)
}

// download serves one record of the sample named in the path as a file.
func (s *Server) download(w http.ResponseWriter, r *http.Request, contentType, ext string,
	build func(screening.SampleDetail, record.Options) ([]byte, error)) {
	d, err := s.store.SampleDetail(r.Context(), r.PathValue("code"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := build(d, record.Options{Now: s.opt.Now(), Device: s.opt.Device})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "allscreen-"+d.Code+ext))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(b)
}

// next records the specimen ID and operator of the next slide.
func (s *Server) next(w http.ResponseWriter, r *http.Request, u *screening.User) {
	if err := s.store.EnterNextSpecimen(r.Context(), r.PostFormValue("specimen"), r.PostFormValue("operator"), u.Name); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// specimen sets a sample's specimen ID and operator after the fact.
func (s *Server) specimen(w http.ResponseWriter, r *http.Request, u *screening.User) {
	code := r.PathValue("code")
	if err := s.store.SetSpecimen(r.Context(), code, r.PostFormValue("specimen"), r.PostFormValue("operator"), u.Name); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/samples/"+url.PathEscape(code), http.StatusSeeOther)
}

// export writes every signed report to the USB stick.
func (s *Server) export(w http.ResponseWriter, r *http.Request, u *screening.User) {
	if err := record.CheckTarget(s.opt.ExportDir, s.store.Dir()); err != nil {
		s.fail(w, r, err)
		return
	}
	sum, err := record.ExportSigned(r.Context(), s.store, s.opt.ExportDir, record.Options{Now: s.opt.Now(), Device: s.opt.Device})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.store.Audit(r.Context(), u.Name, "export", "", fmt.Sprintf("%d signed reports to %s", sum.Reports, sum.Dir))
	s.render(w, http.StatusOK, "error.html", map[string]any{"Title": "Exported",
		"Message": fmt.Sprintf("%d signed reports (PDF and FHIR) written to %s.", sum.Reports, sum.Dir), "Back": "/"})
}

// clock asks for the device's clock to be set to the time the reviewer
// typed (the device's local time zone); allscreen-clock.service applies it.
func (s *Server) clock(w http.ResponseWriter, r *http.Request, u *screening.User) {
	t, err := time.ParseInLocation("2006-01-02T15:04", r.PostFormValue("time"), time.Local)
	if err != nil {
		s.fail(w, r, fmt.Errorf("%q: %w", r.PostFormValue("time"), screening.ErrBadClockTime))
		return
	}
	if err := s.store.RequestClock(r.Context(), t, u.Name); err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, http.StatusOK, "error.html", map[string]any{"Title": "Clock",
		"Message": "The device's clock is being set to " + t.Format("2006-01-02 15:04") + ". Reload the sample list in a few seconds to see it.", "Back": "/"})
}
