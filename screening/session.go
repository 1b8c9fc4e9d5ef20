package screening

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"gocv.io/x/gocv"
)

// Screener is the screening session the daemon drives: one sample at a
// time, fields added to it, then its verdict. Every result it returns has
// been committed to the store first. Methods are safe for concurrent use
// and run one at a time.
type Screener struct {
	store    *Store
	analyzer *Analyzer
	rule     Rule
	prov     Provenance
	log      *slog.Logger
	clock    Clock

	mu      sync.Mutex
	current *Sample // nil between samples
	tally   Tally
	resumed bool
}

// ScreenerConfig wires a Screener.
type ScreenerConfig struct {
	Analyzer   *Analyzer // its Rule is replaced by Rule
	Rule       Rule
	Provenance Provenance
	Logger     *slog.Logger
	Clock      Clock
}

// NewScreener starts a session over store. A sample left open by a crash or
// restart is resumed with its fields (Resumed reports it), so a technician
// can go on with the same slide.
func NewScreener(ctx context.Context, store *Store, cfg ScreenerConfig) (*Screener, error) {
	if err := cfg.Rule.Validate(); err != nil {
		return nil, err
	}
	if cfg.Analyzer == nil {
		return nil, errors.New("screener: no analyzer")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	an := *cfg.Analyzer
	an.Rule = cfg.Rule
	s := &Screener{store: store, analyzer: &an, rule: cfg.Rule, prov: cfg.Provenance, log: cfg.Logger, clock: cfg.Clock}
	smp, t, _, ok, err := store.OpenSample(ctx)
	if err != nil {
		return nil, err
	}
	if ok {
		s.current, s.tally, s.resumed = &smp, t, true
		s.log.Info("resumed open sample", "sample", smp.Code, "fields", t.Fields, "white_cells", t.WhiteCells)
	}
	return s, nil
}

// Check reports a store that can no longer be written: its database file
// removed or replaced under the running daemon (ErrStorageFault).
func (s *Screener) Check() error { return s.store.checkIdentity() }

// Notice is what the technician must be told at power-on: that the
// results database was damaged and set aside (Recovery), or "".
func (s *Screener) Notice() string {
	if r := s.store.Recovery(); r != nil {
		return r.Message()
	}
	return ""
}

// Resumed reports whether the session took over a sample left open.
func (s *Screener) Resumed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resumed
}

// Current returns the open sample and its running tally; ok is false
// between samples.
func (s *Screener) Current() (smp Sample, t Tally, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return Sample{}, Tally{}, false
	}
	return *s.current, s.tally, true
}

// StartSample opens a new sample (committed, with its code) unless one is
// already open, which it returns.
func (s *Screener) StartSample(ctx context.Context) (Sample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked(ctx)
}

func (s *Screener) startLocked(ctx context.Context) (Sample, error) {
	if s.current != nil {
		return *s.current, nil
	}
	smp, err := s.store.CreateSample(ctx, s.prov)
	if err != nil {
		return Sample{}, err
	}
	s.current, s.tally, s.resumed = &smp, Tally{}, false
	s.log.Info("sample opened", "sample", smp.Code)
	return smp, nil
}

// FieldResult is a committed field.
type FieldResult struct {
	Sample   Sample
	Number   int // capture number within the sample, rejected captures included
	FieldID  int64
	Accepted bool
	Reject   string // the technician's reason when not accepted
	Cells    []CellResult
	Field    Tally // this field
	Running  Tally // the sample so far, this field included
}

// Summary is the field's line for the display.
func (r FieldResult) Summary() string {
	if !r.Accepted {
		return fmt.Sprintf("Field %d: %s", r.Number, r.Reject)
	}
	if r.Field.WhiteCells == 0 {
		return fmt.Sprintf("Field %d: no white cell here: move on", r.Number)
	}
	return fmt.Sprintf("Field %d: %s", r.Number, r.Field.Summary())
}

// Summary is a tally in display words: "7 WBC, 2 suspicious".
func (t Tally) Summary() string {
	s := fmt.Sprintf("%d WBC, %d suspicious", t.WhiteCells, t.Blasts)
	if t.Uncertain > 0 {
		s += fmt.Sprintf(", %d unsure", t.Uncertain)
	}
	return s
}

// AddField analyses a captured frame and commits it to the open sample
// (opening one first if none is). The frame is not closed.
//
// Cancelling ctx (SIGTERM) during the analysis abandons the field: nothing
// is stored and ctx's error is returned. Once the analysis is done the
// commit runs to its end whatever ctx says: it takes milliseconds, and a
// result half-stored is never an option (SQLite rolls back an unfinished
// transaction even on a power cut).
func (s *Screener) AddField(ctx context.Context, frame gocv.Mat, capturedAt time.Time) (FieldResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	an, err := s.analyzer.Analyze(ctx, frame)
	if err != nil {
		return FieldResult{}, err
	}
	smp, err := s.startLocked(context.WithoutCancel(ctx))
	if err != nil {
		return FieldResult{}, err
	}
	rec := &FieldRecord{SampleID: smp.ID, CapturedAt: capturedAt, Width: an.Width, Height: an.Height,
		Image: an.Frame, ImageFormat: "jpg", Accepted: an.Accepted, Reject: an.Reject, Cells: an.Cells, Provenance: s.prov}
	stored, err := s.store.SaveField(context.WithoutCancel(ctx), rec)
	if err != nil {
		return FieldResult{}, err
	}
	if an.Accepted {
		stored.Tally.Fields = 0
		s.tally = s.tally.Add(stored.Tally)
		s.tally.Fields++
	}
	res := FieldResult{Sample: smp, Number: stored.Number, FieldID: stored.ID, Accepted: an.Accepted, Reject: an.Reject,
		Field: stored.Tally, Running: s.tally, Cells: make([]CellResult, len(an.Cells))}
	for i, c := range an.Cells {
		res.Cells[i] = CellResult{Box: c.Box, Prediction: c.Prediction, Call: c.Call}
	}
	s.log.Info("field stored", "sample", smp.Code, "field", res.Number, "accepted", res.Accepted, "reject", res.Reject,
		"white_cells", res.Field.WhiteCells, "blasts", res.Field.Blasts, "uncertain", res.Field.Uncertain)
	return res, nil
}

// CloseSample decides and commits the open sample's verdict; the next field
// starts a new sample. It runs to its end whatever ctx says once started.
func (s *Screener) CloseSample(ctx context.Context) (ClosedSample, error) {
	return s.close(ctx, "")
}

// CloseIncomplete closes the open sample before it was finished, for the
// reason why (DecideIncomplete): found open at power-on and closed by the
// technician, or open longer than the appliance allows.
func (s *Screener) CloseIncomplete(ctx context.Context, why string) (ClosedSample, error) {
	if why == "" {
		return ClosedSample{}, errors.New("close incomplete: no reason given")
	}
	return s.close(ctx, why)
}

func (s *Screener) close(ctx context.Context, incomplete string) (ClosedSample, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return ClosedSample{}, ErrNoOpenSample
	}
	if err := ctx.Err(); err != nil {
		return ClosedSample{}, err
	}
	closed, err := s.store.closeSample(context.WithoutCancel(ctx), s.current.ID, s.rule, incomplete)
	if err != nil {
		return ClosedSample{}, err
	}
	s.current, s.tally, s.resumed = nil, Tally{}, false
	s.log.Info("sample closed", "sample", closed.Code, "verdict", closed.Verdict.Headline(),
		"white_cells", closed.Verdict.Tally.WhiteCells, "blasts", closed.Verdict.Tally.Blasts)
	return closed, nil
}
