// Package check holds the checkers that judge recorded histories of
// Meridian's fault tests: linearizability of registers (porcupine), acknowledged
// writes lost, read-your-writes and monotonic reads of sessions, and the
// staleness of bounded reads. The in-process robustness suite and the
// real-process end-to-end suite record the same histories and share these
// judges, so a property means the same thing in both.
package check

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// RegisterInput is one operation on a key of a map of registers.
type RegisterInput struct {
	Key   string
	Put   bool
	Value string
}

// RegisterOutput is what a get returned. Puts have no output.
type RegisterOutput struct {
	Value string
	Found bool
}

// RegisterModel is a map of independent registers, partitioned by key.
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(RegisterInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return RegisterOutput{} },
	Step: func(state, input, output any) (bool, any) {
		in := input.(RegisterInput)
		st := state.(RegisterOutput)
		if in.Put {
			return true, RegisterOutput{Value: in.Value, Found: true}
		}
		return output.(RegisterOutput) == st, st
	},
	DescribeOperation: func(input, output any) string {
		in := input.(RegisterInput)
		if in.Put {
			return fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
		}
		out := output.(RegisterOutput)
		if !out.Found {
			return fmt.Sprintf("get(%s) -> none", in.Key)
		}
		return fmt.Sprintf("get(%s) -> %s", in.Key, out.Value)
	},
}

// Unknown is the return time of a put whose outcome is unknown: it may
// take effect at any time after its call, so it returns after every other
// event.
const Unknown = math.MaxInt64

// History records register operations from concurrent clients.
type History struct {
	start time.Time

	mu   sync.Mutex
	ops  []porcupine.Operation
	acks int
	unk  int
	gets int
}

// NewHistory starts a history; operation times are measured from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the time of an event, as the history measures it.
func (h *History) Now() int64 { return time.Since(h.start).Nanoseconds() }

// Put records a put called at call: acknowledged if ok, of unknown outcome
// otherwise (a failed put may have taken effect).
func (h *History) Put(client int, key, value string, call int64, ok bool) {
	ret := h.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok {
		h.acks++
	} else {
		ret = Unknown
		h.unk++
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: RegisterInput{Key: key, Put: true, Value: value}, Call: call, Return: ret})
}

// Get records a successful read called at call. A failed read has no
// effect and is not recorded.
func (h *History) Get(client int, key string, out RegisterOutput, call int64) {
	ret := h.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gets++
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: RegisterInput{Key: key}, Output: out, Call: call, Return: ret})
}

// Remove drops every put of the given values (writes a failover lost and
// reported: they are judged by the lost-writes report, not here) and
// every read that returned one of them.
func (h *History) Remove(values map[string]bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := h.ops[:0]
	removed := 0
	for _, op := range h.ops {
		in := op.Input.(RegisterInput)
		v := in.Value
		if !in.Put {
			v = op.Output.(RegisterOutput).Value
		}
		if values[v] {
			removed++
			continue
		}
		kept = append(kept, op)
	}
	h.ops = kept
	return removed
}

// Ops returns the recorded operations.
func (h *History) Ops() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}

// Counts returns the acknowledged puts, unknown-outcome puts and gets.
func (h *History) Counts() (acked, unknown, gets int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.acks, h.unk, h.gets
}

// Verdict is the outcome of a linearizability check.
type Verdict struct {
	Result porcupine.CheckResult
	Took   time.Duration
	// Timeline is the HTML visualization of a violation, if one was written.
	Timeline string
}

// Violations is 1 for an illegal history, 0 otherwise.
func (v Verdict) Violations() int {
	if v.Result == porcupine.Illegal {
		return 1
	}
	return 0
}

// Linearizable checks the history with porcupine, allowing timeout for the
// search. An illegal history's timeline is written under dir (named after
// name) for a person to read.
func (h *History) Linearizable(timeout time.Duration, dir, name string) Verdict {
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, h.Ops(), timeout)
	v := Verdict{Result: res, Took: time.Since(start)}
	if res == porcupine.Illegal {
		path := filepath.Join(dir, "meridian-linearizability-"+name+".html")
		if err := porcupine.VisualizePath(RegisterModel, info, path); err == nil {
			v.Timeline = path
		} else {
			fmt.Fprintf(os.Stderr, "cannot write the violation's timeline: %v\n", err)
		}
	}
	return v
}

// LostAcknowledged counts keys whose final value shows that an
// acknowledged write was lost: the final value is a write that was
// superseded by an acknowledged write which began after it ended, a value
// nobody wrote, or nothing although a write to the key was acknowledged.
func (h *History) LostAcknowledged(final map[string]RegisterOutput) int {
	ops := h.Ops()
	lost := 0
	for key, out := range final {
		var finalOp *porcupine.Operation
		var acked []porcupine.Operation
		for i := range ops {
			in := ops[i].Input.(RegisterInput)
			if !in.Put || in.Key != key {
				continue
			}
			if out.Found && in.Value == out.Value {
				finalOp = &ops[i]
			}
			if ops[i].Return != Unknown {
				acked = append(acked, ops[i])
			}
		}
		switch {
		case !out.Found && len(acked) > 0:
			lost++
		case out.Found && finalOp == nil:
			lost++
		case finalOp != nil:
			for _, a := range acked {
				if a.Call > finalOp.Return {
					lost++
					break
				}
			}
		}
	}
	return lost
}

// StaleRead is a read that certainly missed a write: the value it
// returned had been overwritten by a put that ended before the read
// began (or it returned nothing although such a put existed).
type StaleRead struct {
	Client   int
	Key      string
	Got      string
	Missed   string
	MissedBy time.Duration // from the end of the put it missed to the read's start
}

// StaleReads lists up to max reads that certainly missed a write. It finds
// the simplest kind of violation, to say where to look; porcupine judges.
func (h *History) StaleReads(limit int) []StaleRead {
	ops := h.Ops()
	puts := map[string][]porcupine.Operation{}
	byValue := map[string]porcupine.Operation{}
	for _, op := range ops {
		in := op.Input.(RegisterInput)
		if in.Put {
			puts[in.Key] = append(puts[in.Key], op)
			byValue[in.Value] = op
		}
	}
	var out []StaleRead
	for _, op := range ops {
		in := op.Input.(RegisterInput)
		if in.Put {
			continue
		}
		got := op.Output.(RegisterOutput)
		var from int64 // the put of the value read ended by then (0: nothing read)
		if got.Found {
			p, ok := byValue[got.Value]
			if !ok {
				continue
			}
			from = p.Return
		}
		for _, p := range puts[in.Key] {
			if p.Return == Unknown || p.Input.(RegisterInput).Value == got.Value {
				continue
			}
			if (!got.Found || p.Call > from) && p.Return < op.Call {
				out = append(out, StaleRead{Client: op.ClientId, Key: in.Key, Got: got.Value, Missed: p.Input.(RegisterInput).Value,
					MissedBy: time.Duration(op.Call - p.Return)})
				break
			}
		}
		if len(out) >= limit {
			break
		}
	}
	return out
}

// IllegalKeys returns the keys whose own history is not linearizable and,
// for the first, its operations in call order, described one per line.
func (h *History) IllegalKeys(timeout time.Duration) (keys []string, ops []string) {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range h.Ops() {
		k := op.Input.(RegisterInput).Key
		byKey[k] = append(byKey[k], op)
	}
	names := make([]string, 0, len(byKey))
	for k := range byKey {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if porcupine.CheckOperationsTimeout(RegisterModel, byKey[k], timeout) != porcupine.Illegal {
			continue
		}
		keys = append(keys, k)
		if ops != nil {
			continue
		}
		kops := byKey[k]
		sort.Slice(kops, func(i, j int) bool { return kops[i].Call < kops[j].Call })
		for _, op := range kops {
			ret := "unknown"
			if op.Return != Unknown {
				ret = fmt.Sprintf("%.3f", float64(op.Return)/1e9)
			}
			ops = append(ops, fmt.Sprintf("client %d [%.3f, %s] %s", op.ClientId, float64(op.Call)/1e9, ret, RegisterModel.DescribeOperation(op.Input, op.Output)))
		}
	}
	return keys, ops
}
