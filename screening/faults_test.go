package screening

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runLockHolder is the child of the lock tests: it takes the database's
// write lock, says "locked", and holds it until its stdin closes.
func runLockHolder(dir string) int {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, DBName)+"?_txlock=immediate")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	db.SetMaxOpenConns(1)
	tx, err := db.Begin()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lock:", err)
		return 1
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	tx.Rollback()
	db.Close()
	return 0
}

func TestLockedDatabaseGivesClearErrorThenRetrySucceeds(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{BusyTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := countRows(t, s.db)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=lock", "SCREENING_TEST_DIR="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("lock holder said %q: %s", line, stderr.String())
	}
	_, err = s.CreateSample(ctx, testProvenance)
	if !errors.Is(err, ErrStorageBusy) || !strings.Contains(err.Error(), "Storage busy") {
		t.Fatalf("write under another process's lock: %v, want ErrStorageBusy", err)
	}
	// A read-only store still opens and reads while the lock is held.
	r, err := OpenReadOnly(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("read-only open under lock: %v", err)
	}
	if _, err := r.Samples(ctx); err != nil {
		t.Errorf("read under lock: %v", err)
	}
	r.Close()
	if got := countRows(t, s.db); got != before {
		t.Errorf("rows changed by a failed write: %s -> %s", before, got)
	}
	stdin.Close() // the other process lets go
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lock holder: %v %s", err, stderr.String())
	}
	if _, err := s.CreateSample(ctx, testProvenance); err != nil {
		t.Fatalf("retry after the lock was released: %v", err)
	}
}

func TestWriteWaitsForAShortLock(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{BusyTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=lock", "SCREENING_TEST_DIR="+dir)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("lock holder said %q", line)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.CreateSample(ctx, testProvenance)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("write finished while the lock was held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	stdin.Close()
	if err := <-done; err != nil {
		t.Fatalf("write after a short lock: %v", err)
	}
	cmd.Wait()
}

func TestGarbageDatabaseIsSetAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DBName)
	junk := bytes.Repeat([]byte("this is not a database; "), 400)
	if err := os.WriteFile(path, junk, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{Clock: newFakeClock()})
	if err != nil {
		t.Fatalf("open over a damaged file: %v", err)
	}
	defer s.Close()
	rec := s.Recovery()
	if rec == nil {
		t.Fatal("no recovery reported")
	}
	if kept, err := os.ReadFile(rec.SetAside); err != nil || !bytes.Equal(kept, junk) {
		t.Errorf("damaged file not kept as %s: %v", rec.SetAside, err)
	}
	if !strings.Contains(rec.SetAside, "results.corrupt-20250601T093001Z.db") || !strings.Contains(rec.Message(), "damaged") {
		t.Errorf("recovery %+v: %s", rec, rec.Message())
	}
	// The session hands it to the panel, once at power-on.
	if n := newTestScreener(t, s, &fakeClassifier{}, nil).Notice(); n != rec.Message() {
		t.Errorf("screener notice %q, want the recovery message", n)
	}
	ev, err := s.Events(ctx)
	if err != nil || len(ev) != 1 || ev[0].Kind != "database-set-aside" {
		t.Errorf("events %+v %v", ev, err)
	}
	// Nothing of the old file is readable: numbering jumps a whole block.
	smp, err := s.CreateSample(ctx, testProvenance)
	if err != nil || smp.ID != sampleNumberFloor+1 {
		t.Errorf("first sample after recovery: %+v %v", smp, err)
	}
	if err := s.Verify(ctx); err != nil {
		t.Error(err)
	}
}

func TestDamagedPageIsSetAsideAndCodesContinue(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTestStore(t, dir)
	oldCodes := map[string]bool{}
	for i := range 15 {
		smp, err := s.CreateSample(ctx, testProvenance)
		if err != nil {
			t.Fatal(err)
		}
		oldCodes[smp.Code] = true
		if _, err := s.SaveField(ctx, testField(smp.ID, 8, 1, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, DBName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	if len(data) < 6*page {
		t.Fatalf("database only %d bytes", len(data))
	}
	// Scribble over the last page (cell rows).
	for i := len(data) - page; i < len(data); i++ {
		data[i] = byte(i * 7)
	}
	os.WriteFile(path, data, 0o644)

	s2, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatalf("open a damaged database: %v", err)
	}
	defer s2.Close()
	if s2.Recovery() == nil {
		t.Fatal("damage not detected")
	}
	t.Log(s2.Recovery().Message())
	smp, err := s2.CreateSample(ctx, testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	if oldCodes[smp.Code] || smp.ID <= 15 {
		t.Errorf("sample %d %s after recovery reuses an old number", smp.ID, smp.Code)
	}
	// The damaged file still opens for review.
	old, err := sql.Open("sqlite", "file:"+s2.Recovery().SetAside+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	var n int
	if err := old.QueryRow(`SELECT count(*) FROM samples`).Scan(&n); err != nil || n != 15 {
		t.Errorf("set-aside file: %d samples readable, %v", n, err)
	}
}

// failingFS makes image writes fail with ENOSPC after a byte budget.
type failingFS struct {
	osFileSystem
	budget *int
}

type budgetFile struct {
	*os.File
	budget *int
}

func (f failingFS) CreateTemp(dir, pattern string) (writableFile, error) {
	file, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return budgetFile{file, f.budget}, nil
}

func (f budgetFile) Write(p []byte) (int, error) {
	if len(p) > *f.budget {
		return 0, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	*f.budget -= len(p)
	return f.File.Write(p)
}

func TestImageWriteOnFullDisk(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTestStore(t, dir)
	smp, _ := s.CreateSample(ctx, testProvenance)
	budget := 30 // the frame fits, the crops do not
	s.files = failingFS{budget: &budget}
	_, err := s.SaveField(ctx, testField(smp.ID, 3, 0, "full"))
	if !errors.Is(err, ErrStorageFull) || !strings.Contains(err.Error(), "Storage full: export and delete old results") {
		t.Fatalf("got %v, want ErrStorageFull", err)
	}
	if got := countRows(t, s.db); got != "samples=1 fields=0 cells=0" {
		t.Errorf("partial rows after a full disk: %s", got)
	}
	temps, _ := filepath.Glob(filepath.Join(dir, "images", "*", tempPrefix+"*"))
	if len(temps) > 0 {
		t.Errorf("temp files left: %v", temps)
	}
	budget = 1 << 20 // space returns
	if _, err := s.SaveField(ctx, testField(smp.ID, 3, 0, "full")); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	if err := s.Verify(ctx); err != nil {
		t.Error(err)
	}
}

func TestDatabaseFullIsRolledBack(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	smp, _ := s.CreateSample(ctx, testProvenance)
	if _, err := s.SaveField(ctx, testField(smp.ID, 5, 0, "a")); err != nil {
		t.Fatal(err)
	}
	before := countRows(t, s.db)
	var pages int
	s.db.QueryRow(`PRAGMA page_count`).Scan(&pages)
	// The store's one connection: the limit holds for its next write.
	if _, err := s.db.Exec(fmt.Sprintf(`PRAGMA max_page_count = %d`, pages)); err != nil {
		t.Fatal(err)
	}
	big := testField(smp.ID, 60, 0, "b") // more cell rows than fit
	_, err := s.SaveField(ctx, big)
	if !errors.Is(err, ErrStorageFull) {
		t.Fatalf("got %v, want ErrStorageFull", err)
	}
	if got := countRows(t, s.db); got != before {
		t.Errorf("rows after a full database: %s, want %s", got, before)
	}
	if _, err := s.db.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveField(ctx, big); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	if err := s.Verify(ctx); err != nil {
		t.Error(err)
	}
}

// TestFullFilesystem fills a real 2 MB tmpfs (root only) with fields until
// the disk is full, then frees space and goes on.
func TestFullFilesystem(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "small")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v: %s); TestImageWriteOnFullDisk and TestDatabaseFullIsRolledBack cover ENOSPC", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	ctx := context.Background()
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 512<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "state")
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	smp, err := s.CreateSample(ctx, testProvenance)
	if err != nil {
		t.Fatal(err)
	}
	var full error
	saved := 0
	for i := range 200 {
		f := testField(smp.ID, 20, 1, fmt.Sprint(i))
		f.Image = bytes.Repeat([]byte(fmt.Sprint(i)), 20<<10) // ~20-60 KB a frame
		if _, err := s.SaveField(ctx, f); err != nil {
			full = err
			break
		}
		saved++
	}
	if !errors.Is(full, ErrStorageFull) {
		t.Fatalf("after %d fields: %v, want ErrStorageFull", saved, full)
	}
	t.Logf("disk full after %d fields: %v", saved, full)
	var fields, cells, white int
	s.db.QueryRow(`SELECT count(*), coalesce(sum(white_cells), 0) FROM fields`).Scan(&fields, &white)
	s.db.QueryRow(`SELECT count(*) FROM cells`).Scan(&cells)
	if fields != saved || cells != white {
		t.Errorf("after a full disk: %d field rows for %d saved, %d cell rows for %d white cells", fields, saved, cells, white)
	}
	if err := s.Verify(ctx); err != nil {
		t.Error(err)
	}
	os.Remove(filler)
	f := testField(smp.ID, 20, 1, "after")
	if _, err := s.SaveField(ctx, f); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	if _, err := s.CloseSample(ctx, smp.ID, testRule); err != nil {
		t.Fatalf("verdict after space returned: %v", err)
	}
	if err := s.Verify(ctx); err != nil {
		t.Error(err)
	}
}

// readOnlyFS fails every image write as a card remounted read-only does.
type readOnlyFS struct{ osFileSystem }

func (readOnlyFS) CreateTemp(dir, pattern string) (writableFile, error) {
	return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, pattern), Err: syscall.EROFS}
}

// TestReadOnlyStorageIsAFault (issue 15 item 2): a card gone read-only
// mid-session is ErrStorageFault ("call service"), not a retryable error,
// and nothing of the field is stored.
func TestReadOnlyStorageIsAFault(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	smp, _ := s.CreateSample(ctx, testProvenance)
	s.files = readOnlyFS{}
	_, err := s.SaveField(ctx, testField(smp.ID, 3, 0, "ro"))
	if !errors.Is(err, ErrStorageFault) || errors.Is(err, ErrStorageBusy) || errors.Is(err, ErrStorageFull) ||
		!errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "call service") {
		t.Fatalf("got %v, want ErrStorageFault wrapping EROFS", err)
	}
	if got := countRows(t, s.db); got != "samples=1 fields=0 cells=0" {
		t.Errorf("rows after a read-only card: %s", got)
	}
}

// TestDatabaseRemovedOrReplacedUnderTheStore (issue 15 item 2): results.db
// deleted or replaced while the store is open. SQLite would go on writing
// into the unlinked file, every result shown and stored nowhere; instead
// every write, and the store's check, fail with ErrStorageFault.
func TestDatabaseRemovedOrReplacedUnderTheStore(t *testing.T) {
	for _, how := range []string{"removed", "replaced"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openTestStore(t, dir)
			smp, err := s.CreateSample(ctx, testProvenance)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, DBName)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if how == "replaced" {
				if err := os.WriteFile(path, nil, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.checkIdentity(); !errors.Is(err, ErrStorageFault) || !strings.Contains(err.Error(), how) {
				t.Errorf("check: %v, want ErrStorageFault saying %s", err, how)
			}
			if _, err := s.SaveField(ctx, testField(smp.ID, 2, 0, "x")); !errors.Is(err, ErrStorageFault) {
				t.Errorf("save field: %v, want ErrStorageFault", err)
			}
			if _, err := s.CloseSample(ctx, smp.ID, testRule); !errors.Is(err, ErrStorageFault) {
				t.Errorf("close sample: %v, want ErrStorageFault", err)
			}
			if _, err := s.CreateSample(ctx, testProvenance); !errors.Is(err, ErrStorageFault) {
				t.Errorf("create sample: %v, want ErrStorageFault", err)
			}
		})
	}
}

// TestOpenSampleCarriedOverFromADamagedDatabase (issue 15 item 2): when a
// damaged database is set aside at start, the sample that was open (the
// slide still under the microscope) is carried into the new one under its
// own code with its fields, so the technician continues it rather than
// starting the slide again under a new code.
func TestOpenSampleCarriedOverFromADamagedDatabase(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openTestStore(t, dir)
	done, _ := s.CreateSample(ctx, testProvenance)
	s.SaveField(ctx, testField(done.ID, 5, 0, "done"))
	s.CloseSample(ctx, done.ID, testRule)
	open, _ := s.CreateSample(ctx, testProvenance)
	for i := range 3 {
		if _, err := s.SaveField(ctx, testField(open.ID, 4, 1, fmt.Sprint("open", i))); err != nil {
			t.Fatal(err)
		}
	}
	var root int
	if err := s.db.QueryRowContext(ctx, `SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_samples_1'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, DBName)
	data, _ := os.ReadFile(path)
	const page = 4096
	for i := (root-1)*page + 8; i < root*page; i++ { // the sample codes' index, its header kept
		data[i] = 0
	}
	os.WriteFile(path, data, 0o644)

	s2, err := Open(ctx, dir, Options{Clock: newFakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	rec := s2.Recovery()
	if rec == nil {
		t.Fatal("damage not detected")
	}
	if !strings.Contains(rec.Message(), "Sample "+open.Code+", open in it, was carried over with 3 field(s)") {
		t.Errorf("recovery message: %s", rec.Message())
	}
	got, tally, last, ok, err := s2.OpenSample(ctx)
	if err != nil || !ok || got.Code != open.Code || last != 3 || tally.WhiteCells != 12 || tally.Blasts != 3 {
		t.Fatalf("open sample after recovery: %+v %+v last %d ok %v %v", got, tally, last, ok, err)
	}
	if err := s2.Verify(ctx); err != nil {
		t.Error(err)
	}
	// The next field continues it; a new sample never reuses a number.
	if f, err := s2.SaveField(ctx, testField(got.ID, 1, 0, "after")); err != nil || f.Number != 4 {
		t.Errorf("next field %+v %v", f, err)
	}
	if n, err := s2.CreateSample(ctx, testProvenance); err != nil || n.ID <= open.ID {
		t.Errorf("new sample %+v %v", n, err)
	}
}
