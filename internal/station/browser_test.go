package station

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"allscreen/screening"
	"allscreen/screening/screeningtest"
)

// newImageFixture is newFixture's store with one closed sample whose field
// and crops are the bundled images: 12 cells, the first called blast at
// 0.95 (a normal lymphocyte: the device's false call the reviewer corrects)
// and two uncertain, so the device says INCONCLUSIVE.
func newImageFixture(t *testing.T) *fixture {
	f := newFixture(t, 0)
	prov := screening.Provenance{ModelSHA256: "0f3c9a1e77d2", ConfigSHA256: "c", SoftwareVersion: "test"}
	d := screeningtest.ImageSample(t, f.store, prov, func(i int) float32 {
		switch i {
		case 0:
			return 0.95
		case 1, 2:
			return 0.6
		}
		return float32(0.02 + 0.03*float64(i))
	}, 1, 2)
	f.code = d.Code
	return f
}

// browserContext starts Debian's chromium headless. Without chromium the
// test is skipped, unless ALLSCREEN_REQUIRE_BROWSER is set (make test sets
// it, and CI installs chromium): there it fails.
func browserContext(t *testing.T) context.Context {
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("ALLSCREEN_REQUIRE_BROWSER") != "" {
			t.Fatalf("chromium is required (ALLSCREEN_REQUIRE_BROWSER): %v; apt-get install chromium", err)
		}
		t.Skip("chromium not installed")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestBrowserReviewFlow is the review as a person does it, in a real
// headless Chromium: log in, open the sample from the list, reclassify the
// device's false blast call, sign with the PIN (counted: at most 8 clicks
// and keystrokes from the list, issue 13), then amend. With
// ALLSCREEN_SCREENSHOTS=DIR it saves the pages for the docs.
func TestBrowserReviewFlow(t *testing.T) {
	f := newImageFixture(t)
	ctx := browserContext(t)
	srv := httptest.NewServer(f.srv)
	defer srv.Close()
	shots := os.Getenv("ALLSCREEN_SCREENSHOTS")
	shot := func(name string) {
		if shots == "" {
			return
		}
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.scrollTo(0, 0); true`))
		var b []byte
		if err == nil {
			b, err = chromedp.Run(ctx, chromedp.CaptureScreenshot()) // the top of the page: what a reviewer sees first
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(shots, name), b, 0o644)
		}
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	text := func(sel string) string {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	d := f.detail()
	wrong := d.Fields[0].Cells[0] // P(blast) 0.95: the device's one blast call
	cell := fmt.Sprintf("#cell-%d", wrong.ID)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=name]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "Dr Reviewer"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), reviewerPW+"\r"),
		chromedp.WaitVisible(chromedp.CSS(`table`)),
	); err != nil {
		t.Fatalf("log in: %v", err)
	}
	shot("review-list.png")
	// From the sample list on, every click and keystroke is counted.
	steps := 0
	click := func(sel string) chromedp.Action[chromedp.Void] { steps++; return chromedp.Click(chromedp.CSS(sel)) }
	keys := func(sel, s string) chromedp.Action[chromedp.Void] {
		steps += len(s)
		return chromedp.SendKeys(chromedp.CSS(sel), s)
	}
	if err := chromedp.Do(ctx,
		click(fmt.Sprintf(`a[href="/samples/%s"]`, f.code)),
		chromedp.WaitVisible(chromedp.CSS(cell)),
		click(cell+` button[value="not-blast"]`),
		chromedp.WaitVisible(chromedp.CSS(cell+` button.on[value="not-blast"]`)),
	); err != nil {
		t.Fatalf("reclassify: %v", err)
	}
	reviewed := text(`#reviewed`)
	shot("review-sample.png")
	if err := chromedp.Do(ctx,
		click(`#sign input[name=pin]`),
		keys(`#sign input[name=pin]`, reviewerPIN+"\r"),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/amend"]`)),
	); err != nil {
		t.Fatalf("sign: %v", err)
	}
	page := text(`#reviewed`)
	if !strings.Contains(reviewed, "NO BLASTS SEEN in 10 white cells") || !strings.Contains(reviewed, "draft") {
		t.Errorf("after reclassifying, the reviewed verdict reads %q", reviewed)
	}
	if !strings.Contains(page, "Signed by Dr Reviewer") {
		t.Errorf("after signing: %q", page)
	}
	if steps > 8 {
		t.Errorf("from the list to a signed sample took %d clicks and keystrokes, want at most 8", steps)
	}
	t.Logf("from the sample list to a signed sample with one reclassified cell: %d clicks and keystrokes", steps)
	if cur := f.detail().Current(); !cur.Signed() || cur.Calls[wrong.ID] != screening.CallNotBlast {
		t.Fatalf("stored: %+v", cur)
	}
	// Download the signed report as a person does, and read it with
	// poppler: the first page renders, and it says what was signed.
	pdfPath := downloadReport(t, ctx)
	if txt, err := exec.Command("pdftotext", "-layout", pdfPath, "-").Output(); err != nil {
		t.Errorf("pdftotext: %v", err)
	} else {
		for _, want := range []string{"Sample " + f.code, "NO BLASTS SEEN in 10 white cells", "Signed by", "Dr Reviewer", "Intended use"} {
			if !strings.Contains(string(txt), want) {
				t.Errorf("the report lacks %q:\n%s", want, txt)
			}
		}
	}
	png := filepath.Join(t.TempDir(), "page")
	if out, err := exec.Command("pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile", pdfPath, png).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm cannot render the report: %v %s", err, out)
	}
	if st, err := os.Stat(png + ".png"); err != nil || st.Size() < 1000 {
		t.Fatalf("pdftoppm rendered nothing: %v", err)
	}
	if shots != "" {
		b, _ := os.ReadFile(png + ".png")
		os.WriteFile(filepath.Join(shots, "review-report.png"), b, 0o644)
	}
	// Amend: a new version, the signed one kept.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`form[action$="/amend"] input[name=reason]`), "second look at cell 1\r"),
		chromedp.WaitVisible(chromedp.CSS(`#sign`)),
	); err != nil {
		t.Fatalf("amend: %v", err)
	}
	page = text(`#reviewed`)
	if !strings.Contains(page, "version 2, draft") {
		t.Errorf("after amending: %q", page)
	}
	if v := f.detail().Versions; len(v) != 2 || !v[0].Signed() {
		t.Errorf("versions after amending: %+v", v)
	}
}

// downloadReport clicks the sample page's report link and returns the
// downloaded file.
func downloadReport(t *testing.T, ctx context.Context) string {
	dir := t.TempDir()
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
				Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptr(true)})
			return err
		}),
		chromedp.Click(chromedp.CSS(`a[href$="/report.pdf"]`)),
	); err != nil {
		t.Fatalf("download the report: %v", err)
	}
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("download the report: %v", err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			return filepath.Join(dir, ev.GUID)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			t.Fatal("the report download was cancelled")
		}
	}
	t.Fatal("no download")
	return ""
}

func ptr[T any](v T) *T { return &v }
