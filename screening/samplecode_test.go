package screening

import (
	"context"
	"strings"
	"testing"
)

func TestSampleCodes(t *testing.T) {
	seen := map[string]int64{}
	for n := int64(1); n <= 200_000; n++ {
		c := SampleCode(n)
		if len(c) != 5 {
			t.Fatalf("SampleCode(%d) = %q, want 5 characters", n, c)
		}
		if strings.ContainsAny(c, "01OIL") {
			t.Fatalf("SampleCode(%d) = %q holds an ambiguous character", n, c)
		}
		if prev, dup := seen[c]; dup {
			t.Fatalf("SampleCode(%d) = SampleCode(%d) = %q", n, prev, c)
		}
		seen[c] = n
		if !ValidSampleCode(c) {
			t.Fatalf("SampleCode(%d) = %q fails its own check", n, c)
		}
	}
	// Consecutive samples differ in more than one character.
	for n := int64(1); n < 1000; n++ {
		a, b := SampleCode(n), SampleCode(n+1)
		diff := 0
		for i := range a {
			if a[i] != b[i] {
				diff++
			}
		}
		if diff < 2 {
			t.Errorf("%s and %s (samples %d, %d) differ in %d character", a, b, n, n+1, diff)
		}
	}
	// Past 31^4 - 1 the codes grow and still never collide with short ones.
	last4, first5 := SampleCode(923_520), SampleCode(923_521)
	if len(last4) != 5 || len(first5) != 6 || !ValidSampleCode(first5) {
		t.Errorf("width change: %q, %q", last4, first5)
	}
}

func TestSampleCodeCheckCatchesTypos(t *testing.T) {
	for n := int64(1); n <= 2000; n++ {
		c := SampleCode(n)
		for i := range len(c) {
			for _, r := range CodeAlphabet {
				if byte(r) == c[i] {
					continue
				}
				typo := c[:i] + string(r) + c[i+1:]
				if ValidSampleCode(typo) {
					t.Fatalf("%s -> %s (one wrong character) passes the check", c, typo)
				}
			}
			if i+1 < len(c) && c[i] != c[i+1] {
				swap := c[:i] + string(c[i+1]) + string(c[i]) + c[i+2:]
				if ValidSampleCode(swap) {
					t.Fatalf("%s -> %s (adjacent swap) passes the check", c, swap)
				}
			}
		}
	}
	if !ValidSampleCode(strings.ToLower(SampleCode(7))) {
		t.Error("lower case is refused")
	}
	for _, bad := range []string{"", "2345", "0AAAA", "ABC-D", "AAAAAAAAAAAA\x00"} {
		if ValidSampleCode(bad) {
			t.Errorf("ValidSampleCode(%q) = true", bad)
		}
	}
}

func FuzzValidSampleCode(f *testing.F) {
	f.Add(SampleCode(1))
	f.Add("ZZZZ2")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		ValidSampleCode(s) // must not panic
	})
}

// TestPrefixedCodesDifferBetweenDevices (issue 13): two devices with
// different prefixes never issue the same code, and a prefixed code is
// still checked whole (a misread prefix character is caught).
func TestPrefixedCodesDifferBetweenDevices(t *testing.T) {
	seen := map[string]string{}
	for _, prefix := range []string{"", "K7", "K8", "7K"} {
		if !ValidCodePrefix(prefix) {
			t.Fatalf("prefix %q refused", prefix)
		}
		for n := int64(1); n <= 2000; n++ {
			c := PrefixedSampleCode(prefix, n)
			if !strings.HasPrefix(c, prefix) || !ValidSampleCode(c) {
				t.Fatalf("%q %d: %q", prefix, n, c)
			}
			if other, dup := seen[c]; dup {
				t.Fatalf("code %s issued by prefix %q and %q", c, prefix, other)
			}
			seen[c] = prefix
		}
	}
	c := PrefixedSampleCode("K7", 1)
	if ValidSampleCode("K8" + c[2:]) {
		t.Error("a misread prefix character passed the check")
	}
	for _, bad := range []string{"K0", "K7M", "k7", "-"} {
		if ValidCodePrefix(bad) {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	if _, err := Open(context.Background(), t.TempDir(), Options{CodePrefix: "K0"}); err == nil {
		t.Error("a store opened with prefix K0")
	}
	s, err := Open(context.Background(), t.TempDir(), Options{CodePrefix: "K7"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if smp, err := s.CreateSample(context.Background(), testProvenance); err != nil || smp.Code != PrefixedSampleCode("K7", 1) {
		t.Errorf("first sample %+v %v", smp, err)
	}
}
