package crdt

import (
	"fmt"
	"sync"
)

// lwwRule is the name of the built-in last-writer-wins rule.
const lwwRule = "lww"

// A Resolver decides a conflict between two concurrent versions of a
// register. It is called with the versions in last-writer-wins order (a
// older than b) and returns the winner: a, b or a version with another
// value. Only the Value and Deleted fields of the result are used; the
// winner keeps b's time, region and dot.
//
// A Resolver must be deterministic, a function of its arguments only, so
// that every region decides the same. It need not be commutative or
// associative: the versions are always presented in the same order, and
// the winner among several is recomputed from all of them (folded oldest
// first) whenever they change. It must not modify its arguments.
type Resolver func(a, b Version) Version

var resolvers struct {
	sync.RWMutex
	m map[string]Resolver
}

// RegisterResolver makes fn available under name to registers whose
// writes name it. It panics if name is empty or "lww", if fn is nil, or if
// name is already registered, like database/sql.Register: resolvers are
// registered once, at init time, identically in every process.
func RegisterResolver(name string, fn Resolver) {
	if name == "" || name == lwwRule {
		panic(fmt.Sprintf("crdt: resolver name %q is reserved", name))
	}
	if fn == nil {
		panic("crdt: RegisterResolver of a nil resolver " + name)
	}
	resolvers.Lock()
	defer resolvers.Unlock()
	if _, dup := resolvers.m[name]; dup {
		panic("crdt: RegisterResolver called twice for " + name)
	}
	if resolvers.m == nil {
		resolvers.m = make(map[string]Resolver)
	}
	resolvers.m[name] = fn
}

// LookupResolver returns the resolver registered under name. The names ""
// and "lww" give the built-in last-writer-wins resolver, which returns the
// newer version. An unknown name gives an error wrapping
// ErrUnknownResolver.
func LookupResolver(name string) (Resolver, error) {
	if name == "" || name == lwwRule {
		return lastWriterWins, nil
	}
	resolvers.RLock()
	fn, ok := resolvers.m[name]
	resolvers.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (not registered in this process)", ErrUnknownResolver, name)
	}
	return fn, nil
}

func lastWriterWins(_, b Version) Version { return b }
