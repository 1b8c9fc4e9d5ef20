package screening

import (
	"fmt"
	"hash/fnv"
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

// CodeAlphabet holds the characters of sample codes.
const CodeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

const (
	codeBase     = int64(len(CodeAlphabet)) // 31
	codeMinWidth = 4                        // 923,520 samples before codes grow to 5+1 characters
	// codeMultiplier scrambles the sample number; any value coprime to 31
	// makes number -> number*codeMultiplier mod 31^w a bijection.
	codeMultiplier = 387_420_489 // 3^18
)

// SampleCode returns the code for sample number n (n >= 1), without a
// device prefix.
func SampleCode(n int64) string { return PrefixedSampleCode("", n) }

// PrefixedSampleCode is sample n's code on a device whose codes start with
// prefix (characters of the code alphabet, see DevicePrefix): two devices
// with different prefixes never issue the same code (issue 13). The check
// character covers the prefix too.
func PrefixedSampleCode(prefix string, n int64) string {
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
		body[i] = CodeAlphabet[v%codeBase]
		v /= codeBase
	}
	body = append([]byte(prefix), body...)
	return string(body) + string(CodeAlphabet[checkIndex(body)])
}

// MaxCodePrefix is the longest device prefix: with it a code still fits a
// 16-column line beside "REVIEW:".
const MaxCodePrefix = 2

// ValidCodePrefix reports whether p can prefix codes: at most
// MaxCodePrefix characters of the code alphabet.
func ValidCodePrefix(p string) bool {
	if len(p) > MaxCodePrefix {
		return false
	}
	for i := 0; i < len(p); i++ {
		if strings.IndexByte(CodeAlphabet, p[i]) < 0 {
			return false
		}
	}
	return true
}

// DevicePrefix derives a two-character code prefix from a device ID (961
// possible). Two devices in one clinic share one with probability about
// 1 in 961: a clinic with several devices sets each its own prefix in the
// configuration instead (screening.code_prefix).
func DevicePrefix(deviceID string) string {
	h := fnv.New32a()
	h.Write([]byte(deviceID))
	v := int64(h.Sum32()) % (codeBase * codeBase)
	return string([]byte{CodeAlphabet[v/codeBase], CodeAlphabet[v%codeBase]})
}

// ValidSampleCode reports whether s (any case) is a well-formed code with a
// correct check character.
func ValidSampleCode(s string) bool {
	s = strings.ToUpper(s)
	if len(s) < codeMinWidth+1 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(CodeAlphabet, s[i]) < 0 {
			return false
		}
	}
	return CodeAlphabet[checkIndex([]byte(s[:len(s)-1]))] == s[len(s)-1]
}

// checkIndex is the check character's index for body: the weighted sum of
// all characters, the check's weight 1 and the body's 2, 3, ... from the
// left, is 0 mod 31. Because 31 is prime and the weights are distinct and
// non-zero mod 31, every single wrong character and every swap of two
// adjacent ones changes the sum (for codes shorter than 30 characters).
func checkIndex(body []byte) int64 {
	var sum int64
	for i := range body {
		sum += int64(i+2) * int64(strings.IndexByte(CodeAlphabet, body[i]))
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
