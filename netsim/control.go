package netsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Run-time control of an emulated network.
//
// A process that emulates the network (`meridian start --latency ...`)
// delays and drops what it sends. Its emulated network can be changed while
// it runs, one Fault at a time, through the node's HTTP API (POST
// /debug/netsim), so that tests and drills can cut real processes apart
// without root. Each process only shapes what it sends, so a partition
// between processes is made by giving every process the same Fault; a
// Fault given to one process only is a one-way cut.

// ErrBadFault is wrapped by the errors ParseFault and Apply return for a
// fault that cannot be applied.
var ErrBadFault = errors.New("netsim: bad fault")

// Fault is one change to an emulated network. Op says which; the other
// fields are its arguments:
//
//	heal                         remove every cut (loss, jitter and delays stay)
//	reset                        heal, and restore the configured loss, jitter and round trips
//	isolate     node             cut node from every other node
//	cut_region  region           cut region from every other region
//	split       a, b             cut every link between the nodes of a and of b
//	bridge      a, b, bridge     as split, but the bridge node keeps its links to both sides
//	ring        ids              each node of ids keeps only its two ring neighbours
//	block       from, to         cut the directed link from->to
//	unblock     from, to         undo block (or a cut of split, bridge, ring)
//	loss        rate [regions]   loss probability: everywhere, or between two regions
//	duplicate   rate             duplication probability
//	jitter      ms               extra random delay bound
//	rtt         regions, ms      round trip between two regions
type Fault struct {
	Op      string   `json:"op"`
	Node    uint64   `json:"node,omitempty"`
	Region  string   `json:"region,omitempty"`
	A       []uint64 `json:"a,omitempty"`
	B       []uint64 `json:"b,omitempty"`
	Bridge  uint64   `json:"bridge,omitempty"`
	IDs     []uint64 `json:"ids,omitempty"`
	From    uint64   `json:"from,omitempty"`
	To      uint64   `json:"to,omitempty"`
	Rate    float64  `json:"rate,omitempty"`
	MS      float64  `json:"ms,omitempty"`
	Regions []string `json:"regions,omitempty"`
}

// maxFaultIDs bounds the node lists of a fault.
const maxFaultIDs = 1024

// ParseFault decodes a Fault from JSON and checks it (see Fault.Validate).
func ParseFault(data []byte) (Fault, error) {
	var f Fault
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Fault{}, fmt.Errorf("%w: %w", ErrBadFault, err)
	}
	if dec.More() {
		return Fault{}, fmt.Errorf("%w: trailing data after the fault", ErrBadFault)
	}
	return f, f.Validate()
}

// Validate checks that the fault names a known op with the arguments it
// needs.
func (f Fault) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrBadFault, f.Op, fmt.Sprintf(format, args...))
	}
	if len(f.A) > maxFaultIDs || len(f.B) > maxFaultIDs || len(f.IDs) > maxFaultIDs {
		return bad("more than %d node ids", maxFaultIDs)
	}
	rateOK := func() bool { return f.Rate >= 0 && f.Rate <= 1 }
	switch f.Op {
	case "heal", "reset":
	case "isolate":
		if f.Node == 0 {
			return bad("needs a node")
		}
	case "cut_region":
		if f.Region == "" {
			return bad("needs a region")
		}
	case "split", "bridge":
		if len(f.A) == 0 || len(f.B) == 0 {
			return bad("needs two non-empty sides a and b")
		}
		if f.Op == "bridge" && f.Bridge == 0 {
			return bad("needs a bridge node")
		}
	case "ring":
		if len(f.IDs) < 3 {
			return bad("needs at least 3 ids")
		}
	case "block", "unblock":
		if f.From == 0 || f.To == 0 || f.From == f.To {
			return bad("needs two different nodes from and to")
		}
	case "loss":
		if !rateOK() || f.Rate == 1 {
			return bad("rate %v not in [0, 1)", f.Rate)
		}
		if len(f.Regions) != 0 && (len(f.Regions) != 2 || f.Regions[0] == "" || f.Regions[1] == "") {
			return bad("regions must name two regions, or be left out")
		}
	case "duplicate":
		if !rateOK() {
			return bad("rate %v not in [0, 1]", f.Rate)
		}
	case "jitter":
		if !(f.MS >= 0 && f.MS <= float64(maxRTT/time.Millisecond)) {
			return bad("ms %v out of range", f.MS)
		}
	case "rtt":
		if len(f.Regions) != 2 || f.Regions[0] == "" || f.Regions[1] == "" || f.Regions[0] == f.Regions[1] {
			return bad("regions must name two different regions")
		}
		if !(f.MS >= 0 && f.MS <= float64(maxRTT/time.Millisecond)) {
			return bad("ms %v out of range", f.MS)
		}
	case "":
		return fmt.Errorf("%w: no op", ErrBadFault)
	default:
		return fmt.Errorf("%w: unknown op %q (want heal, reset, isolate, cut_region, split, bridge, ring, block, unblock, loss, duplicate, jitter or rtt)", ErrBadFault, f.Op)
	}
	return nil
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// Apply changes the network as f says. It fails on the identity Network,
// which cannot be changed.
func (n *Network) Apply(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if n.identity {
		return fmt.Errorf("%w: the network is not emulated", ErrBadFault)
	}
	switch f.Op {
	case "heal":
		n.Heal()
	case "reset":
		n.update(func() {
			clear(n.cuts)
			clear(n.isolated)
			clear(n.cutRegions)
			clear(n.pairLoss)
			n.lossRate, n.dupRate, n.jitter = n.base.LossRate, n.base.DuplicateRate, n.base.Jitter
			n.matrix = n.base.Matrix.Clone()
			if n.matrix == nil {
				n.matrix = Matrix{}
			}
		})
	case "isolate":
		n.Isolate(f.Node)
	case "cut_region":
		n.CutRegion(f.Region)
	case "split":
		n.Split(f.A, f.B)
	case "bridge":
		n.Bridge(f.A, f.B, f.Bridge)
	case "ring":
		n.Ring(f.IDs)
	case "block":
		n.BlockLink(f.From, f.To)
	case "unblock":
		n.UnblockLink(f.From, f.To)
	case "loss":
		if len(f.Regions) == 2 {
			n.SetPairLossRate(f.Regions[0], f.Regions[1], f.Rate)
		} else {
			n.SetLossRate(f.Rate)
		}
	case "duplicate":
		n.SetDuplicateRate(f.Rate)
	case "jitter":
		n.SetJitter(msDuration(f.MS))
	case "rtt":
		n.SetRTT(f.Regions[0], f.Regions[1], msDuration(f.MS))
	}
	return nil
}

// regionPair is an unordered pair of regions.
type regionPair struct{ a, b string }

func pairOf(a, b string) regionPair {
	if a > b {
		a, b = b, a
	}
	return regionPair{a, b}
}

// SetPairLossRate sets the loss probability of messages between two
// regions (in both directions), on top of the network-wide rate; p is
// clamped to [0, 1), and 0 removes it.
func (n *Network) SetPairLossRate(regionA, regionB string, p float64) {
	switch {
	case !(p > 0):
		p = 0
	case p >= 1:
		p = 0.999999
	}
	n.update(func() {
		if p == 0 {
			delete(n.pairLoss, pairOf(regionA, regionB))
		} else {
			n.pairLoss[pairOf(regionA, regionB)] = p
		}
	})
}

// State describes the emulated network as it is now.
type State struct {
	Emulated bool `json:"emulated"`
	// Nodes maps node id to region.
	Nodes map[uint64]string `json:"nodes,omitempty"`
	// Cut lists the cut directed links as "from->to".
	Cut        []string           `json:"cut,omitempty"`
	Isolated   []uint64           `json:"isolated,omitempty"`
	CutRegions []string           `json:"cut_regions,omitempty"`
	LossRate   float64            `json:"loss_rate,omitempty"`
	PairLoss   map[string]float64 `json:"pair_loss,omitempty"`
	DupRate    float64            `json:"duplicate_rate,omitempty"`
	JitterMS   float64            `json:"jitter_ms,omitempty"`
	// RTTMS maps "a<->b" to the emulated round trip between two regions.
	RTTMS map[string]float64 `json:"rtt_ms,omitempty"`
}

// State returns the network's current shape.
func (n *Network) State() State {
	if n.identity {
		return State{}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st := State{Emulated: true, Nodes: map[uint64]string{}, LossRate: n.lossRate, DupRate: n.dupRate,
		JitterMS: float64(n.jitter) / float64(time.Millisecond)}
	for id, r := range n.nodes {
		st.Nodes[id] = r
	}
	for k := range n.cuts {
		st.Cut = append(st.Cut, fmt.Sprintf("%d->%d", k.from, k.to))
	}
	slices.Sort(st.Cut)
	for id := range n.isolated {
		st.Isolated = append(st.Isolated, id)
	}
	slices.Sort(st.Isolated)
	for r := range n.cutRegions {
		st.CutRegions = append(st.CutRegions, r)
	}
	slices.Sort(st.CutRegions)
	if len(n.pairLoss) > 0 {
		st.PairLoss = map[string]float64{}
		for p, v := range n.pairLoss {
			st.PairLoss[p.a+"<->"+p.b] = v
		}
	}
	for a, row := range n.matrix {
		for b, d := range row {
			if st.RTTMS == nil {
				st.RTTMS = map[string]float64{}
			}
			p := pairOf(a, b)
			st.RTTMS[strings.Join([]string{p.a, p.b}, "<->")] = float64(d) / float64(time.Millisecond)
		}
	}
	return st
}

// Emulated reports whether the network emulates anything (false for the
// identity Network).
func (n *Network) Emulated() bool { return n != nil && !n.identity }
