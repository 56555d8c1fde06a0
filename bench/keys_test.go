package bench

import (
	"math"
	"slices"
	"testing"
)

func TestKeyName(t *testing.T) {
	for _, c := range []struct {
		i    int64
		want string
	}{{0, "user0000000000"}, {42, "user0000000042"}, {12345678901, "user12345678901"}} {
		if got := KeyName("user", c.i); got != c.want {
			t.Errorf("KeyName(%d) = %q, want %q", c.i, got, c.want)
		}
	}
}

func draw(c KeyChooser, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = c.Next()
	}
	return out
}

func TestChoosersStayInRange(t *testing.T) {
	for _, n := range []int64{1, 2, 3, 10, 1000, 123_457} {
		for _, c := range []KeyChooser{NewUniform(n, 1), NewZipfian(n, 1), NewLatest(func() int64 { return n }, 1)} {
			for _, v := range draw(c, 20_000) {
				if v < 0 || v >= n {
					t.Fatalf("%T over %d records chose %d", c, n, v)
				}
			}
		}
	}
}

func TestChoosersAreDeterministic(t *testing.T) {
	for _, dist := range Distributions {
		a, err := NewKeyChooser(dist, 5000, nil, 7)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewKeyChooser(dist, 5000, nil, 7)
		c, _ := NewKeyChooser(dist, 5000, nil, 8)
		da, db, dc := draw(a, 1000), draw(b, 1000), draw(c, 1000)
		if !slices.Equal(da, db) {
			t.Errorf("%s: same seed, different sequences", dist)
		}
		if slices.Equal(da, dc) {
			t.Errorf("%s: different seeds, same sequence", dist)
		}
	}
	if _, err := NewKeyChooser("pareto", 10, nil, 1); err == nil {
		t.Error("unknown distribution accepted")
	}
	if _, err := NewKeyChooser(DistUniform, 0, nil, 1); err == nil {
		t.Error("zero records accepted")
	}
}

// topShare returns the fraction of draws that went to the most popular
// fraction frac of the n keys.
func topShare(draws []int64, n int64, frac float64) float64 {
	counts := make([]int, n)
	for _, v := range draws {
		counts[v]++
	}
	slices.SortFunc(counts, func(a, b int) int { return b - a })
	top := 0
	for _, c := range counts[:max(1, int(float64(n)*frac))] {
		top += c
	}
	return float64(top) / float64(len(draws))
}

func TestZipfianIsSkewed(t *testing.T) {
	const n = 10_000
	draws := draw(NewZipfian(n, 3), 300_000)
	share := topShare(draws, n, 0.01)
	t.Logf("zipfian: the top 1%% of keys got %.1f%% of requests", 100*share)
	if share < 0.25 {
		t.Fatalf("the top 1%% of keys got %.1f%% of the requests: not skewed", 100*share)
	}
	// Scrambled: the hot keys are spread out, not the lowest indexes.
	low := 0
	for _, v := range draws {
		if v < n/100 {
			low++
		}
	}
	if f := float64(low) / float64(len(draws)); f > 0.1 {
		t.Fatalf("%.1f%% of requests went to the lowest 1%% of indexes: not scrambled", 100*f)
	}
	// Uniform is not skewed.
	if share := topShare(draw(NewUniform(n, 3), 300_000), n, 0.01); share > 0.02 {
		t.Fatalf("uniform: the top 1%% of keys got %.1f%%", 100*share)
	}
}

func TestZipfianRankFrequencies(t *testing.T) {
	// Unscrambled, rank r is drawn with probability about
	// (r+1)^-theta / zeta(n): exactly for ranks 0 and 1, approximately
	// (a continuous inversion) beyond.
	const n, draws = 1000, 400_000
	z := newZipfGen(n, ZipfianTheta)
	rng := newRand(9, 9)
	counts := make([]int, n)
	for range draws {
		counts[z.rank(rng.Float64())]++
	}
	p := func(r int) float64 { return math.Pow(float64(r+1), -ZipfianTheta) / z.zetan }
	for _, r := range []int{0, 1} {
		if got := float64(counts[r]) / draws; math.Abs(got-p(r)) > 0.05*p(r) {
			t.Errorf("rank %d: frequency %.4f, want %.4f", r, got, p(r))
		}
	}
	for _, k := range []int{10, 100, 500} {
		want, got := 0.0, 0
		for r := range k {
			want += p(r)
			got += counts[r]
		}
		if f := float64(got) / draws; math.Abs(f-want) > 0.1*want {
			t.Errorf("top %d ranks: share %.4f, want %.4f", k, f, want)
		}
	}
}

func TestZetaApproximation(t *testing.T) {
	for _, n := range []int64{1, 5, 1000, 1001, 250_000} {
		exact := 0.0
		for i := n; i >= 1; i-- {
			exact += math.Pow(float64(i), -ZipfianTheta)
		}
		got := zetaApprox(n, ZipfianTheta, 1000)
		if math.Abs(got-exact) > 1e-9*exact {
			t.Errorf("zeta(%d): approximation %v, exact %v", n, got, exact)
		}
	}
}

func TestLatestFollowsInserts(t *testing.T) {
	count := int64(1000)
	l := NewLatest(func() int64 { return count }, 5)
	share := func() float64 {
		hot := 0
		const k = 50_000
		for range k {
			v := l.Next()
			if v < 0 || v >= count {
				t.Fatalf("latest chose %d of %d", v, count)
			}
			if v >= count-count/100 {
				hot++
			}
		}
		return float64(hot) / k
	}
	if s := share(); s < 0.25 {
		t.Fatalf("the newest 1%% of records got %.1f%% of requests", 100*s)
	}
	// New records become the hot ones: grow a little (incremental zeta) and
	// a lot (recomputed).
	for _, c := range []int64{1010, 500_000} {
		count = c
		if s := share(); s < 0.2 {
			t.Fatalf("after growing to %d: the newest 1%% got %.1f%%", c, 100*s)
		}
		if math.Abs(l.z.zetan-zeta(c, ZipfianTheta)) > 1e-9*l.z.zetan {
			t.Fatalf("zeta after growing to %d: %v, want %v", c, l.z.zetan, zeta(c, ZipfianTheta))
		}
	}
	count = 0
	if v := l.Next(); v != 0 {
		t.Fatalf("latest over no records chose %d", v)
	}
}

func TestParseDistribution(t *testing.T) {
	if d, err := ParseDistribution(" Zipfian "); err != nil || d != DistZipfian {
		t.Fatalf("got %q %v", d, err)
	}
	for _, s := range []string{"", "zipf", "hotspot"} {
		if _, err := ParseDistribution(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
