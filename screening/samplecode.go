package screening

import (
	"fmt"
	"strings"
)

// A sample code is what the technician writes on the slide: short, and made
// of characters that cannot be misread for one another in handwriting or on
// a small display (no 0/O, 1/I/L). It is derived from the store's sample
// number (an AUTOINCREMENT key, never reused, even after a reboot or a
// deletion), so it is unique on the device.
//
// The number is scrambled by a bijection before encoding, so consecutive
// samples differ in most characters: two slides prepared one after the
// other cannot be confused by a single misread character. A final check
// character catches any single wrong character and any swap
// of two adjacent ones when a code is typed back in (see checkIndex).

const codeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

const (
	codeBase     = int64(len(codeAlphabet)) // 31
	codeMinWidth = 4                        // 923,520 samples before codes grow to 5+1 characters
	// codeMultiplier scrambles the sample number; any value coprime to 31
	// makes number -> number*codeMultiplier mod 31^w a bijection.
	codeMultiplier = 387_420_489 // 3^18
)

// SampleCode returns the code for sample number n (n >= 1).
func SampleCode(n int64) string {
	if n < 1 {
		panic(fmt.Sprintf("screening: sample number %d < 1", n))
	}
	width, mod := codeMinWidth, pow(codeBase, codeMinWidth)
	for n >= mod {
		width++
		mod *= codeBase
	}
	v := mulMod(n, codeMultiplier%mod, mod)
	body := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		body[i] = codeAlphabet[v%codeBase]
		v /= codeBase
	}
	return string(body) + string(codeAlphabet[checkIndex(body)])
}

// ValidSampleCode reports whether s (any case) is a well-formed code with a
// correct check character.
func ValidSampleCode(s string) bool {
	s = strings.ToUpper(s)
	if len(s) < codeMinWidth+1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(codeAlphabet, s[i]) < 0 {
			return false
		}
	}
	return codeAlphabet[checkIndex([]byte(s[:len(s)-1]))] == s[len(s)-1]
}

// checkIndex is the check character's index for body: the weighted sum of
// all characters, the check's weight 1 and the body's 2, 3, ... from the
// left, is 0 mod 31. Because 31 is prime and the weights are distinct and
// non-zero mod 31, every single wrong character and every swap of two
// adjacent ones changes the sum (for codes shorter than 30 characters).
func checkIndex(body []byte) int64 {
	var sum int64
	for i := range body {
		sum += int64(i+2) * int64(strings.IndexByte(codeAlphabet, body[i]))
	}
	return (codeBase - sum%codeBase) % codeBase
}

func pow(b int64, e int) int64 {
	r := int64(1)
	for range e {
		r *= b
	}
	return r
}

// mulMod computes a*b mod m without overflow for m below 2^62.
func mulMod(a, b, m int64) int64 {
	var r int64
	a %= m
	for b > 0 {
		if b&1 == 1 {
			r = (r + a) % m
		}
		a = (a * 2) % m
		b >>= 1
	}
	return r
}
