package streaming

import (
	"cmp"
	"errors"
	"slices"
	"strings"

	"github.com/meridian-db/meridian/stream"
)

// Status describes one stream this node sends.
type Status struct {
	Keyspace   string `json:"keyspace"`
	Shard      int    `json:"shard"`
	FromRegion string `json:"from_region"`
	ToRegion   string `json:"to_region"`
	Acked      uint64 `json:"acked"`
	Applied    uint64 `json:"applied"`
	LagEntries uint64 `json:"lag_entries"`
	LagMS      int64  `json:"lag_ms"`
	Epoch      uint64 `json:"epoch"`
	// Strategy is the keyspace's (async or active).
	Strategy string `json:"strategy,omitempty"`
	// Retries counts failed sends (each makes the stream ask the
	// destination for its position again).
	Retries uint64 `json:"retries,omitempty"`
	// Resyncs counts the times the destination was sent the whole data;
	// while one runs, Resyncing is set and ResyncKeys/ResyncBytes say how
	// much has been shipped.
	Resyncs     uint64 `json:"resyncs,omitempty"`
	Resyncing   bool   `json:"resyncing,omitempty"`
	ResyncKeys  int64  `json:"resync_keys,omitempty"`
	ResyncBytes int64  `json:"resync_bytes,omitempty"`
	// GapRepairs counts batches the destination refused for a gap, after
	// which the stream went on at once from the destination's position.
	GapRepairs uint64 `json:"gap_repairs,omitempty"`
	// Bytes is the encoded size of what the stream sent, BatchBytes the
	// same without heartbeats.
	Bytes      uint64 `json:"bytes,omitempty"`
	BatchBytes uint64 `json:"batch_bytes,omitempty"`
	// Stalled: the stream has made no progress for longer than
	// StallAfter plus the RTT to the destination, for StalledForMS;
	// StallReason says why (peer unreachable, refused batch and the
	// refusal's code, gap, clock check, epoch...). It clears when the
	// stream makes progress again.
	Stalled      bool   `json:"stalled,omitempty"`
	StallReason  string `json:"stall_reason,omitempty"`
	StalledForMS int64  `json:"stalled_for_ms,omitempty"`
	// LastError is the last failure since the stream last made progress.
	LastError string `json:"last_error,omitempty"`
	// Err is why the stream stopped, if it did.
	Err string `json:"error,omitempty"`
}

// Sort orders statuses by keyspace, shard and destination region.
func Sort(ss []Status) {
	slices.SortFunc(ss, func(a, b Status) int {
		return cmp.Or(strings.Compare(a.Keyspace, b.Keyspace), cmp.Compare(a.Shard, b.Shard), strings.Compare(a.ToRegion, b.ToRegion))
	})
}

// Reason describes a stream's failure for its stall report; code gives
// an error's stable code (the node's error table).
func Reason(code func(error) string, err error) string {
	if errors.Is(err, stream.ErrChangeTooLarge) {
		return "change too large: " + err.Error()
	}
	c := code(err)
	label := c
	switch c {
	case "unreachable":
		label = "peer unreachable"
	case "timeout", "outcome_unknown":
		label = "no answer"
	case "no_leader", "not_leader", "dropped", "stopped":
		label = "destination group unavailable (" + c + ")"
	case "stream_gap":
		label = "gap"
	case "clock_skew":
		label = "refused batch (clock_skew: clock check)"
	case "epoch_ahead":
		label = "epoch ahead"
	case "stream_stale_epoch", "stale_epoch":
		label = "stale epoch"
	case "bad_batch", "wrong_cluster", "is_primary", "too_large", "bad_command":
		label = "refused batch (" + c + ")"
	}
	return label + ": " + err.Error()
}
