package kv

import "testing"

// globRef is a direct recursive reading of the glob rules, exponential
// but obviously right on small inputs; GlobMatch must agree with it.
func globRef(p, s []byte) bool {
	if len(p) == 0 {
		return len(s) == 0
	}
	if p[0] == '*' {
		for i := 0; i <= len(s); i++ {
			if globRef(p[1:], s[i:]) {
				return true
			}
		}
		return false
	}
	if len(s) == 0 {
		return false
	}
	w, ok := globOne(p, s[0])
	return ok && globRef(p[w:], s[1:])
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything", true},
		{"user:*", "user:42", true},
		{"user:*", "users:42", false},
		{"h?llo", "hello", true},
		{"h?llo", "hllo", false},
		{"h[ae]llo", "hallo", true},
		{"h[ae]llo", "hillo", false},
		{"h[^e]llo", "hallo", true},
		{"h[^e]llo", "hello", false},
		{"h[a-b]llo", "hbllo", true},
		{"h[b-a]llo", "hallo", true}, // reversed ranges are swapped
		{"h[a-b]llo", "hcllo", false},
		{`h\*llo`, "h*llo", true},
		{`h\*llo`, "hello", false},
		{`[\]]`, "]", true},
		{"[]", "a", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{`ab\`, `ab\`, true},
		{"[abc", "b", true}, // an unterminated class runs to the end
	}
	for _, c := range cases {
		if got := GlobMatch([]byte(c.p), []byte(c.s)); got != c.want {
			t.Errorf("GlobMatch(%q, %q) = %v, want %v", c.p, c.s, got, c.want)
		}
		if len(c.s) < 20 {
			if ref := globRef([]byte(c.p), []byte(c.s)); ref != c.want {
				t.Errorf("reference(%q, %q) = %v, want %v", c.p, c.s, ref, c.want)
			}
		}
	}
}

func FuzzGlobMatch(f *testing.F) {
	f.Add("a*b?[c-d]", "aXXbZc")
	f.Add(`*\[x*`, "[x")
	f.Add("[^a-c]*", "d")
	f.Fuzz(func(t *testing.T, p, s string) {
		if len(p) > 12 || len(s) > 12 {
			return // the reference is exponential
		}
		if got, want := GlobMatch([]byte(p), []byte(s)), globRef([]byte(p), []byte(s)); got != want {
			t.Fatalf("GlobMatch(%q, %q) = %v, reference %v", p, s, got, want)
		}
	})
}
