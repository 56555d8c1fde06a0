package check

import (
	"fmt"
	"sync"
)

// Sessions judges read-your-writes and monotonic reads. A session writes
// increasing integers to a key of its own and hands its token to readers,
// possibly in other regions; every read carrying the token must see the
// session's last acknowledged write or later (read-your-writes), and never
// a value older than one the session has already read (monotonic reads).
type Sessions struct {
	mu         sync.Mutex
	wrote      map[string]int64 // session -> last acknowledged value
	read       map[string]int64 // session -> newest value read
	reads      int
	ryw, mono  int
	violations []string
}

// NewSessions returns an empty judge.
func NewSessions() *Sessions {
	return &Sessions{wrote: map[string]int64{}, read: map[string]int64{}}
}

// Wrote records that session's write of value was acknowledged (and its
// token updated with the answer).
func (s *Sessions) Wrote(session string, value int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wrote[session] = max(s.wrote[session], value)
}

// Read records a read made with session's token, which returned value
// (found false: nothing), and judges it. where says who served it.
func (s *Sessions) Read(session string, value int64, found bool, where string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if !found {
		value = 0
	}
	if w := s.wrote[session]; value < w {
		s.ryw++
		s.note(fmt.Sprintf("read-your-writes: session %s wrote %d, read %d at %s", session, w, value, where))
	}
	if r := s.read[session]; value < r {
		s.mono++
		s.note(fmt.Sprintf("monotonic reads: session %s read %d, then %d at %s", session, r, value, where))
	}
	s.read[session] = max(s.read[session], value)
}

func (s *Sessions) note(v string) {
	if len(s.violations) < 20 {
		s.violations = append(s.violations, v)
	}
}

// Result returns the number of reads judged, the violations of each kind
// and the first few violations described.
func (s *Sessions) Result() (reads, ryw, mono int, examples []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads, s.ryw, s.mono, append([]string(nil), s.violations...)
}
