package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
)

// Key distributions, as Params.Distribution and the command line spell them.
const (
	DistZipfian = "zipfian"
	DistUniform = "uniform"
	DistLatest  = "latest"
)

// Distributions lists the accepted key distributions.
var Distributions = []string{DistZipfian, DistUniform, DistLatest}

// ZipfianTheta is the skew YCSB uses for its zipfian request distribution.
const ZipfianTheta = 0.99

// ParseDistribution checks a distribution name ("zipfian", "uniform" or
// "latest", case-insensitive) and returns it in lower case.
func ParseDistribution(s string) (string, error) {
	d := strings.ToLower(strings.TrimSpace(s))
	switch d {
	case DistZipfian, DistUniform, DistLatest:
		return d, nil
	case "":
		return "", fmt.Errorf("bench: empty key distribution (want one of %s)", strings.Join(Distributions, ", "))
	}
	return "", fmt.Errorf("bench: unknown key distribution %q (want one of %s)", s, strings.Join(Distributions, ", "))
}

// KeyChooser picks the index of the next key a client reads or updates.
// Implementations are deterministic given their seed and are not safe for
// concurrent use: give every client its own.
type KeyChooser interface {
	// Next returns a record index, at least 0 and below the number of
	// records the chooser covers.
	Next() int64
}

// KeyName formats record i as a key: prefix followed by i in decimal,
// zero-padded to 10 digits so that keys of one run have the same length.
func KeyName(prefix string, i int64) string {
	b := make([]byte, 0, len(prefix)+12)
	b = append(b, prefix...)
	digits := strconv.AppendInt(nil, i, 10)
	for n := len(digits); n < 10; n++ {
		b = append(b, '0')
	}
	return string(append(b, digits...))
}

// newRand returns a PCG generator for one stream of one seed: different
// streams of the same seed are independent sequences.
func newRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream*0x9e3779b97f4a7c15+0x2545f4914f6cdd1d))
}

// Uniform picks every one of n records with the same probability.
type Uniform struct {
	n   int64
	rng *rand.Rand
}

// NewUniform returns a uniform chooser over records [0, n). It panics if n
// is not positive.
func NewUniform(n int64, seed uint64) *Uniform {
	if n <= 0 {
		panic(fmt.Sprintf("bench: NewUniform with %d records", n))
	}
	return &Uniform{n: n, rng: newRand(seed, 1)}
}

// Next implements KeyChooser.
func (u *Uniform) Next() int64 { return u.rng.Int64N(u.n) }

// Zipfian picks records with a zipfian popularity: the record of rank r
// (0-based) is chosen with probability proportional to 1/(r+1)^theta. The
// ranks are scrambled with a hash so that the popular records are spread over
// the key space instead of being the lowest indexes (YCSB's "scrambled
// zipfian"): a few hot keys on every shard, not one hot shard.
type Zipfian struct {
	z   zipfGen
	rng *rand.Rand
}

// NewZipfian returns a scrambled zipfian chooser over records [0, n) with
// theta ZipfianTheta. It panics if n is not positive.
func NewZipfian(n int64, seed uint64) *Zipfian {
	return NewZipfianTheta(n, ZipfianTheta, seed)
}

// NewZipfianTheta is NewZipfian with another skew; theta must be in (0, 1).
func NewZipfianTheta(n int64, theta float64, seed uint64) *Zipfian {
	if n <= 0 {
		panic(fmt.Sprintf("bench: NewZipfian with %d records", n))
	}
	if !(theta > 0 && theta < 1) {
		panic(fmt.Sprintf("bench: zipfian theta %v is not in (0, 1)", theta))
	}
	return &Zipfian{z: newZipfGen(n, theta), rng: newRand(seed, 2)}
}

// Next implements KeyChooser.
func (z *Zipfian) Next() int64 {
	r := z.z.rank(z.rng.Float64())
	return int64(scramble(uint64(r)) % uint64(z.z.n))
}

// Latest favours the most recently inserted records: the newest record is
// the most popular, the one before it the second most popular, and so on with
// a zipfian falloff (YCSB's "latest", used by workload D). The number of
// records is read from count at every pick, so records inserted during the
// run become the hot ones.
type Latest struct {
	count func() int64
	z     zipfGen
	rng   *rand.Rand
}

// NewLatest returns a chooser over records [0, count()) skewed towards the
// highest indexes. count must be safe to call from the chooser's goroutine
// and should never decrease.
func NewLatest(count func() int64, seed uint64) *Latest {
	n := max(count(), 1)
	return &Latest{count: count, z: newZipfGen(n, ZipfianTheta), rng: newRand(seed, 3)}
}

// Next implements KeyChooser. It returns 0 while count() is 0.
func (l *Latest) Next() int64 {
	n := l.count()
	if n <= 0 {
		return 0
	}
	if n != l.z.n {
		l.z.resize(n)
	}
	return n - 1 - l.z.rank(l.rng.Float64())
}

// NewKeyChooser returns the chooser for a distribution name. Uniform and
// zipfian choose among the first records records; latest chooses among
// count() records, the newest favoured (count nil means a fixed records).
func NewKeyChooser(dist string, records int64, count func() int64, seed uint64) (KeyChooser, error) {
	d, err := ParseDistribution(dist)
	if err != nil {
		return nil, err
	}
	if records <= 0 {
		return nil, fmt.Errorf("bench: key chooser over %d records", records)
	}
	switch d {
	case DistUniform:
		return NewUniform(records, seed), nil
	case DistZipfian:
		return NewZipfian(records, seed), nil
	default:
		if count == nil {
			count = func() int64 { return records }
		}
		return NewLatest(count, seed), nil
	}
}

// scramble is FNV-1a over the 8 little-endian bytes of v.
func scramble(v uint64) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for range 8 {
		h ^= v & 0xff
		h *= prime
		v >>= 8
	}
	return h
}

// zipfGen draws zipfian ranks in [0, n) by inverting an approximation of the
// cumulative distribution (Gray et al., "Quickly generating billion-record
// synthetic databases", SIGMOD 1994): constant time per draw after the
// normalisation constant zeta(n) is known.
type zipfGen struct {
	n     int64
	theta float64
	alpha float64 // 1 / (1 - theta)
	zetan float64 // sum over i in [1, n] of i^-theta
	half  float64 // 1 + 0.5^theta: the cumulative weight of ranks 0 and 1
	eta   float64
}

func newZipfGen(n int64, theta float64) zipfGen {
	z := zipfGen{theta: theta, alpha: 1 / (1 - theta), half: 1 + math.Pow(0.5, theta)}
	z.setZeta(n, zeta(n, theta))
	return z
}

// resize changes the number of items, extending zeta(n) term by term for a
// small growth instead of recomputing it.
func (z *zipfGen) resize(n int64) {
	if n > z.n && n-z.n <= 1<<16 {
		s := z.zetan
		for i := z.n + 1; i <= n; i++ {
			s += math.Pow(float64(i), -z.theta)
		}
		z.setZeta(n, s)
		return
	}
	z.setZeta(n, zeta(n, z.theta))
}

func (z *zipfGen) setZeta(n int64, zetan float64) {
	z.n, z.zetan = n, zetan
	// With n <= 2 every draw falls in the first two branches of rank.
	if n > 2 {
		z.eta = (1 - math.Pow(2/float64(n), 1-z.theta)) / (1 - z.half/zetan)
	}
}

// rank maps a uniform u in [0, 1) to a rank.
func (z *zipfGen) rank(u float64) int64 {
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < z.half {
		return min(1, z.n-1)
	}
	r := int64(float64(z.n) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return max(0, min(r, z.n-1))
}

// zetaExactTerms is how many terms of zeta are summed one by one; the tail
// beyond uses the Euler-Maclaurin formula, whose error there is far below
// float64 precision.
const zetaExactTerms = 1 << 20

type zetaKey struct {
	n     int64
	theta float64
}

// zetaCache remembers zeta(n, theta): every client of a run builds its own
// chooser over the same n.
var zetaCache sync.Map // zetaKey -> float64

// zeta returns the sum over i in [1, n] of i^-theta.
func zeta(n int64, theta float64) float64 {
	k := zetaKey{n, theta}
	if v, ok := zetaCache.Load(k); ok {
		return v.(float64)
	}
	v := zetaApprox(n, theta, zetaExactTerms)
	zetaCache.Store(k, v)
	return v
}

// zetaApprox sums the first exact terms one by one and approximates the
// rest, sum over i in (m, n] of f(i) with f(x) = x^-theta, by
//
//	integral from m to n of f + (f(n) - f(m))/2 + (f'(n) - f'(m))/12.
func zetaApprox(n int64, theta float64, exact int64) float64 {
	m := min(n, exact)
	s := 0.0
	for i := m; i >= 1; i-- { // smallest terms first
		s += math.Pow(float64(i), -theta)
	}
	if n == m {
		return s
	}
	fm, fn := float64(m), float64(n)
	f := func(x float64) float64 { return math.Pow(x, -theta) }
	df := func(x float64) float64 { return -theta * math.Pow(x, -theta-1) }
	integral := (math.Pow(fn, 1-theta) - math.Pow(fm, 1-theta)) / (1 - theta)
	return s + integral + (f(fn)-f(fm))/2 + (df(fn)-df(fm))/12
}
