package vuln

import "regexp"

// CompareAPK compares two apk versions as apk-tools does (src/version.c,
// apk_version_compare): versions are read as tokens — digits separated by '.',
// an optional letter, suffixes (_alpha < _beta < _pre < _rc < none < _cvs <
// _svn < _git < _hg < _p) with optional numbers, and "-rN" — and compared token
// by token. A numeric part with leading zeros compares as a fraction (1.01 <
// 1.1). It returns -1, 0 or +1.
func CompareAPK(a, b string) int {
	at, bt := tokDigit, tokDigit
	av, bv := 0, 0
	ab, bb := a, b
	for at == bt && at != tokEnd && at != tokInvalid && av == bv {
		av = apkToken(&at, &ab)
		bv = apkToken(&bt, &bb)
	}
	switch {
	case av < bv:
		return -1
	case av > bv:
		return 1
	case at == bt:
		return 0
	}
	// Leading parts equal: the longer version is greater, unless what follows is
	// a pre-release suffix.
	if at == tokSuffix {
		tt, rest := at, ab
		if apkToken(&tt, &rest) < 0 {
			return -1
		}
	}
	if bt == tokSuffix {
		tt, rest := bt, bb
		if apkToken(&tt, &rest) < 0 {
			return 1
		}
	}
	switch {
	case at > bt:
		return -1
	case bt > at:
		return 1
	}
	return 0
}

// Token types, in apk-tools' order.
const (
	tokInvalid = iota - 1
	tokDigitOrZero
	tokDigit
	tokLetter
	tokSuffix
	tokSuffixNo
	tokRevisionNo
	tokEnd
)

var (
	apkPreSuffixes  = []string{"alpha", "beta", "pre", "rc"}
	apkPostSuffixes = []string{"cvs", "svn", "git", "hg", "p"}
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

// apkNextToken classifies what follows the current token.
func apkNextToken(typ *int, s *string) {
	n := tokInvalid
	switch {
	case len(*s) == 0 || (*s)[0] == 0:
		n = tokEnd
	case (*typ == tokDigit || *typ == tokDigitOrZero) && isLower((*s)[0]):
		n = tokLetter
	case *typ == tokLetter && isDigit((*s)[0]):
		n = tokDigit
	case *typ == tokSuffix && isDigit((*s)[0]):
		n = tokSuffixNo
	default:
		switch (*s)[0] {
		case '.':
			n = tokDigitOrZero
		case '_':
			n = tokSuffix
		case '-':
			if len(*s) > 1 && (*s)[1] == 'r' {
				n = tokRevisionNo
				*s = (*s)[1:]
			}
		}
		*s = (*s)[1:]
	}
	if n < *typ {
		if !((n == tokDigitOrZero && *typ == tokDigit) ||
			(n == tokSuffix && *typ == tokSuffixNo) ||
			(n == tokDigit && *typ == tokLetter)) {
			n = tokInvalid
		}
	}
	*typ = n
}

// apkToken reads the value of the token of type *typ at the start of *s and
// advances to the next token.
func apkToken(typ *int, s *string) int {
	if len(*s) == 0 {
		*typ = tokEnd
		return 0
	}
	v, i, nt := 0, 0, tokInvalid
	str := *s
	switch *typ {
	case tokDigitOrZero:
		// Leading zeros (a "0" followed by more digits) compare as a fraction;
		// a lone "0" is the number zero, so 1.0_alpha < 1.0 as apk orders them.
		if str[0] == '0' && len(str) > 1 && isDigit(str[1]) {
			for i < len(str) && str[i] == '0' {
				i++
			}
			nt = tokDigit
			v = -i
			break
		}
		fallthrough
	case tokDigit, tokSuffixNo, tokRevisionNo:
		for i < len(str) && isDigit(str[i]) {
			if v < 1<<28 {
				v = v*10 + int(str[i]-'0')
			}
			i++
		}
	case tokLetter:
		v = int(str[0])
		i = 1
	case tokSuffix:
		found := false
		for k, suf := range apkPreSuffixes {
			if len(suf) <= len(str) && str[:len(suf)] == suf {
				v, i, found = k-len(apkPreSuffixes), len(suf), true
				break
			}
		}
		if !found {
			for k, suf := range apkPostSuffixes {
				if len(suf) <= len(str) && str[:len(suf)] == suf {
					v, i, found = k, len(suf), true
					break
				}
			}
		}
		if !found {
			*typ = tokInvalid
			return -1
		}
	default:
		*typ = tokInvalid
		return -1
	}
	*s = str[i:]
	switch {
	case len(*s) == 0:
		*typ = tokEnd
	case nt != tokInvalid:
		*typ = nt
	default:
		apkNextToken(typ, s)
	}
	return v
}

// apkVersionRe is the version syntax apk-tools accepts (without the ~hash
// commit suffix of newer releases).
var apkVersionRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(-r[0-9]+)?$`)

// ValidAPK reports whether v is an apk version.
func ValidAPK(v string) bool { return apkVersionRe.MatchString(v) }
