package crdt

import (
	"bytes"
	"slices"
)

// A Register holds a byte string. A write replaces every version it has
// seen. Concurrent writes are a conflict, decided by last writer wins, by
// (Time, Region), unless the newest of them names a Resolver.
//
// The zero value is an empty register, ready to use.
type Register struct {
	ctx VersionVector
	// versions are the current versions, oldest first: one after a local
	// write, several while concurrent writes have not been overwritten.
	versions []Version
	// winner is what reads return, derived from versions.
	winner Version
}

// Type returns "register".
func (*Register) Type() string { return "register" }

// Set writes value at s. resolver names the Resolver to decide conflicts
// of this write with concurrent ones ("" or "lww" for last writer wins); it
// is not looked up until a conflict needs it.
func (r *Register) Set(s Stamp, value []byte, resolver string) {
	if resolver == lwwRule {
		resolver = ""
	}
	r.write(s, Version{Value: cloneBytes(value), Resolver: resolver})
}

// Clear writes a tombstone at s. It keeps the resolver named by the newest
// current version.
func (r *Register) Clear(s Stamp) {
	v := Version{Deleted: true}
	if n := len(r.versions); n > 0 {
		v.Resolver = r.versions[n-1].Resolver
	}
	r.write(s, v)
}

func (r *Register) write(s Stamp, v Version) {
	d := record(&r.ctx, s)
	v.Time, v.Region, v.Seq = s.Time, d.Region, d.Seq
	r.versions = []Version{v}
	r.winner = v
}

// Get returns the register's value and true, or nil and false if it has
// never been written or is deleted. The returned slice must not be
// modified.
func (r *Register) Get() ([]byte, bool) {
	if !r.Live() {
		return nil, false
	}
	return r.winner.Value, true
}

// Winner returns the version reads see and true, or false if the register
// has never been written. After a conflict decided by a resolver, it is
// the newest concurrent version carrying the resolver's value.
func (r *Register) Winner() (Version, bool) { return r.winner, len(r.versions) > 0 }

// Versions returns the current versions, oldest first. There is more than
// one only while concurrent versions have not been overwritten.
func (r *Register) Versions() []Version { return slices.Clone(r.versions) }

// Live reports whether the register holds a value.
func (r *Register) Live() bool { return len(r.versions) > 0 && !r.winner.Deleted }

// Context returns a copy of the register's causal context.
func (r *Register) Context() VersionVector { return r.ctx.Clone() }

func (r *Register) clone() Value {
	return &Register{ctx: r.ctx.Clone(), versions: slices.Clone(r.versions), winner: r.winner}
}

func (r *Register) merge(v Value) (Value, []Conflict, error) {
	o := v.(*Register)
	vs, fresh := mergeVersions(r.versions, r.ctx.Contains, o.versions, o.ctx.Contains)
	out := &Register{ctx: r.ctx.Merge(o.ctx), versions: vs}
	if len(vs) == 0 {
		return out, nil, nil
	}
	w, rule, err := resolve(vs)
	if err != nil {
		return nil, nil, err
	}
	out.winner = w
	if !fresh {
		return out, nil, nil
	}
	return out, []Conflict{{Versions: slices.Clone(vs), Winner: w, Rule: rule}}, nil
}

// resolve returns the winner among concurrent versions vs (oldest first)
// and the rule that chose it: the resolver named by the newest version,
// applied to the versions in order, each result standing in for the newer
// of its two arguments.
func resolve(vs []Version) (Version, string, error) {
	w := vs[len(vs)-1]
	if w.Resolver == "" {
		return w, lwwRule, nil
	}
	if len(vs) == 1 {
		return w, w.Resolver, nil
	}
	fn, err := LookupResolver(w.Resolver)
	if err != nil {
		return Version{}, "", err
	}
	acc := vs[0]
	for _, v := range vs[1:] {
		res := fn(acc, v)
		acc = v
		acc.Deleted = res.Deleted
		acc.Value = nil
		if !res.Deleted {
			acc.Value = cloneBytes(res.Value)
		}
	}
	return acc, w.Resolver, nil
}

// sameOutcome reports whether a and b read the same.
func sameOutcome(a, b Version) bool { return a.Deleted == b.Deleted && bytes.Equal(a.Value, b.Value) }

// Winner encodings, after the versions of a register holding several.
const (
	winnerNewest  = 0 // the newest version as it is
	winnerValue   = 1 // the newest version with another value
	winnerDeleted = 2 // the newest version, deleted
)

// Encode returns the canonical binary form of the register.
func (r *Register) Encode() []byte {
	refs := map[string]bool{}
	versionRegions(refs, r.versions)
	e := newEncoder(tagRegister, dotSetOf(r.ctx), refs, false)
	e.versions(r.versions)
	if n := len(r.versions); n > 1 {
		switch {
		case sameOutcome(r.winner, r.versions[n-1]):
			e.b = append(e.b, winnerNewest)
		case r.winner.Deleted:
			e.b = append(e.b, winnerDeleted)
		default:
			e.b = append(e.b, winnerValue)
			e.bytes(r.winner.Value)
		}
	}
	return e.b
}

// DecodeRegister parses the output of Register.Encode.
func DecodeRegister(b []byte) (*Register, error) { return decodeAs[*Register](b) }

func decodeRegister(d *decoder, ctx VersionVector) *Register {
	r := &Register{ctx: ctx, versions: d.versions(0, true)}
	n := len(r.versions)
	if n == 0 {
		return r
	}
	newest := r.versions[n-1]
	r.winner = newest
	if n == 1 {
		return r
	}
	switch k := d.byte(); k {
	case winnerNewest:
		return r
	case winnerValue:
		r.winner.Value, r.winner.Deleted = d.bytes(), false
	case winnerDeleted:
		r.winner.Value, r.winner.Deleted = nil, true
	default:
		d.fail("bad winner kind %d", k)
	}
	if newest.Resolver == "" || sameOutcome(r.winner, newest) {
		d.fail("non-canonical winner")
	}
	return r
}
