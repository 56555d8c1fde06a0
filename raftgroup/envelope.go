package raftgroup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/meridian-db/meridian/hlc"
)

// The entry envelope: what the raft entry of a proposal carries around
// the state machine's command.
//
//	version 1: id (8 bytes, big-endian) | command
//	version 2: "MRDNENV" (7 bytes) | 2 | flags (1 byte) | id (8) | stamp (16, hlc encoding) | command
//
// The id lets the proposer find its waiter when the entry is applied.
// Version 2 adds the entry's commit stamp: the hybrid logical time of the
// leader that appended it (Config.Stamps), never below the stamp of an
// entry before it in that leader's log. A committed log is a prefix of
// every later leader's log, so the stamps along a group's committed log
// never decrease (see stampFor for what a restart can cost); "the group's
// state at time T" is then the longest prefix of its log whose entries
// are stamped at or before T (package backup).
//
// Flags: bit 0 marks an entry that carries no command (Host.Mark): it is
// applied without calling the state machine, and only its stamp counts.
//
// A version-1 entry is told apart by its first seven bytes: a version-2
// envelope starts with the fixed magic, and ids this package hands out
// never start with it (newID); an id written before version 2 existed
// does so with probability 2^-56. Entries of both versions are applied;
// a host without Config.Stamps still writes version 1. An entry with the
// magic and a later version comes from a newer binary: applying it is
// fatal (ErrEnvelope), as for any command this binary does not know.
// Binaries that write version 2 must not share a group with binaries
// that only know version 1 (those would read the magic as an id and the
// rest as a command).
var envelopeMagic = []byte("MRDNENV")

const (
	envelopeV2      = 2
	envelopeV2Head  = 7 + 1 + 1 + 8 + hlc.EncodedLen
	envelopeFlagMrk = 1 << 0
)

// ErrEnvelope is wrapped by the error about an entry whose envelope this
// binary cannot read: a later version (a newer binary wrote it) or a
// malformed version 2. Applying such an entry is fatal.
var ErrEnvelope = errors.New("raftgroup: unreadable entry envelope")

// envelope is a decoded entry envelope.
type envelope struct {
	id    uint64
	stamp hlc.Timestamp // zero in version 1
	mark  bool          // no command (Host.Mark)
	cmd   []byte
}

// encodeEnvelope returns the entry data of a proposal: version 2 when the
// proposal is stamped (stamp not zero), version 1 otherwise.
func encodeEnvelope(id uint64, stamp hlc.Timestamp, mark bool, cmd []byte) []byte {
	if stamp.IsZero() {
		data := make([]byte, 8, 8+len(cmd))
		binary.BigEndian.PutUint64(data, id)
		return append(data, cmd...)
	}
	data := make([]byte, 0, envelopeV2Head+len(cmd))
	data = append(data, envelopeMagic...)
	data = append(data, envelopeV2)
	var flags byte
	if mark {
		flags |= envelopeFlagMrk
	}
	data = append(data, flags)
	data = binary.BigEndian.AppendUint64(data, id)
	data = stamp.AppendEncode(data)
	return append(data, cmd...)
}

// decodeEnvelope reads the envelope of a normal entry's data. ok is false
// for data too short to hold one (a leader's empty entry); err is set for
// a version-2 magic this binary cannot read.
func decodeEnvelope(data []byte) (env envelope, ok bool, err error) {
	if len(data) < 8 {
		return envelope{}, false, nil
	}
	if len(data) < len(envelopeMagic)+1 || !bytes.Equal(data[:len(envelopeMagic)], envelopeMagic) {
		return envelope{id: binary.BigEndian.Uint64(data), cmd: data[8:]}, true, nil
	}
	switch v := data[len(envelopeMagic)]; {
	case v != envelopeV2:
		return envelope{}, false, fmt.Errorf("%w: version %d", ErrEnvelope, v)
	case len(data) < envelopeV2Head:
		return envelope{}, false, fmt.Errorf("%w: version 2 envelope of %d bytes", ErrEnvelope, len(data))
	}
	p := data[len(envelopeMagic)+1:]
	flags := p[0]
	if flags&^envelopeFlagMrk != 0 {
		return envelope{}, false, fmt.Errorf("%w: flags %#x", ErrEnvelope, flags)
	}
	env.mark = flags&envelopeFlagMrk != 0
	env.id = binary.BigEndian.Uint64(p[1:])
	if env.stamp, err = hlc.Decode(p[9:]); err != nil {
		return envelope{}, false, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	env.cmd = p[9+hlc.EncodedLen:]
	if env.mark && len(env.cmd) != 0 {
		return envelope{}, false, fmt.Errorf("%w: a mark with a command", ErrEnvelope)
	}
	return env, true, nil
}

// EntryStamp returns the commit stamp of a raft entry (zero for an entry
// without one: version 1, a leader's empty entry, a membership change).
func EntryStamp(e *pb.Entry) hlc.Timestamp {
	if e.GetType() != pb.EntryNormal {
		return hlc.Timestamp{}
	}
	env, ok, err := decodeEnvelope(e.GetData())
	if !ok || err != nil {
		return hlc.Timestamp{}
	}
	return env.stamp
}

// nextStamp returns the smallest timestamp after t (for monotonic stamps).
func nextStamp(t hlc.Timestamp) hlc.Timestamp {
	if t.Logical < math.MaxUint32 {
		return hlc.Timestamp{WallMS: t.WallMS, Logical: t.Logical + 1, Node: t.Node}
	}
	return hlc.Timestamp{WallMS: t.WallMS + 1, Node: t.Node}
}

// stampFor returns the commit stamp of a proposal g's leader appends now:
// the node's hybrid time, raised above every stamp seen in g's log (and
// above `after`, for a mark), so that stamps never decrease along the log.
// A replica that restarted knows the stamps of the log it kept (the tail
// is read back at AddGroup); one that lost its whole log to a snapshot and
// leads before receiving any entry may stamp below the snapshot's last
// entry by at most the clocks' offset (hlc.Clock bounds what it accepts).
// Called on the loop.
func (h *Host) stampFor(g *group, after hlc.Timestamp) hlc.Timestamp {
	if h.cfg.Stamps == nil {
		return hlc.Timestamp{}
	}
	if !after.IsZero() {
		// The node's clock moves past what the caller has seen, so that
		// what it stamps next is after it too (refused beyond the offset).
		_, _ = h.cfg.Stamps.Update(after)
	}
	s := h.cfg.Stamps.Now()
	if !g.lastStamp.Less(s) {
		s = nextStamp(g.lastStamp)
	}
	if !after.IsZero() && !after.Less(s) {
		s = nextStamp(after)
	}
	g.lastStamp = s
	return s
}

// noteStamps raises g.lastStamp to the stamps of entries appended to its
// log (a follower's log becomes the log a leader stamps after).
func noteStamps(g *group, ents []*pb.Entry) {
	for _, e := range ents {
		if s := EntryStamp(e); g.lastStamp.Less(s) {
			g.lastStamp = s
		}
	}
}

// tailStampEntries is how many entries at the end of a group's log
// AddGroup reads to recover the last stamp.
const tailStampEntries = 256
