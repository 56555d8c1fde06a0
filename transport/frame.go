package transport

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// ErrBadFrame is wrapped by every decoding error: the bytes received from a
// peer do not follow the framing of this package.
var ErrBadFrame = errors.New("transport: malformed frame")

// frameVersion starts every frame. A receiver rejects versions it does not
// know, so the format can evolve behind a new number.
const frameVersion byte = 1

// envelopeOverhead bounds the framing bytes added to each message in a batch
// frame: its group and its length as uvarints.
const envelopeOverhead = 2 * binary.MaxVarintLen64

// A batch frame is
//
//	version (1 byte)
//	count   (uvarint)
//	count times:
//	    group  (uvarint)
//	    length (uvarint)
//	    length bytes of a proto-encoded raftpb.Message

// appendBatch appends the batch frame of envs to dst.
func appendBatch(dst []byte, envs []Envelope) ([]byte, error) {
	dst = append(dst, frameVersion)
	dst = binary.AppendUvarint(dst, uint64(len(envs)))
	for i, e := range envs {
		if e.Msg == nil {
			return nil, fmt.Errorf("transport: encode batch: envelope %d has no message", i)
		}
		size := proto.Size(e.Msg)
		dst = binary.AppendUvarint(dst, e.Group)
		dst = binary.AppendUvarint(dst, uint64(size))
		before := len(dst)
		var err error
		dst, err = proto.MarshalOptions{}.MarshalAppend(dst, e.Msg)
		if err != nil {
			return nil, fmt.Errorf("transport: encode batch: envelope %d: %w", i, err)
		}
		if len(dst)-before != size {
			// The message changed between Size and Marshal.
			return nil, fmt.Errorf("transport: encode batch: envelope %d modified while encoding", i)
		}
	}
	return dst, nil
}

// decodeBatch parses a batch frame. It never panics and never allocates more
// than the frame can justify.
func decodeBatch(frame []byte) ([]Envelope, error) {
	if len(frame) == 0 {
		return nil, fmt.Errorf("%w: empty batch", ErrBadFrame)
	}
	if frame[0] != frameVersion {
		return nil, fmt.Errorf("%w: unknown batch version %d", ErrBadFrame, frame[0])
	}
	rest := frame[1:]
	count, n := binary.Uvarint(rest)
	if n <= 0 {
		return nil, fmt.Errorf("%w: bad message count", ErrBadFrame)
	}
	rest = rest[n:]
	// Every message takes at least two bytes (group and length).
	if count > uint64(len(rest))/2 {
		return nil, fmt.Errorf("%w: count %d too large for %d bytes", ErrBadFrame, count, len(rest))
	}
	envs := make([]Envelope, 0, count)
	for i := uint64(0); i < count; i++ {
		group, n := binary.Uvarint(rest)
		if n <= 0 {
			return nil, fmt.Errorf("%w: message %d: bad group", ErrBadFrame, i)
		}
		rest = rest[n:]
		size, n := binary.Uvarint(rest)
		if n <= 0 {
			return nil, fmt.Errorf("%w: message %d: bad length", ErrBadFrame, i)
		}
		rest = rest[n:]
		if size > uint64(len(rest)) {
			return nil, fmt.Errorf("%w: message %d: length %d exceeds the %d bytes left", ErrBadFrame, i, size, len(rest))
		}
		msg := new(raftpb.Message)
		if err := proto.Unmarshal(rest[:size], msg); err != nil {
			return nil, fmt.Errorf("%w: message %d: %w", ErrBadFrame, i, err)
		}
		rest = rest[size:]
		envs = append(envs, Envelope{Group: group, Msg: msg})
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadFrame, len(rest))
	}
	return envs, nil
}

// The first message of a snapshot stream is a header: version, uvarint group,
// uvarint total size of the marshalled raftpb.Message. The raw chunks follow.

func encodeSnapshotHeader(group uint64, size int) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64)
	b = append(b, frameVersion)
	b = binary.AppendUvarint(b, group)
	return binary.AppendUvarint(b, uint64(size))
}

func decodeSnapshotHeader(b []byte) (group, size uint64, err error) {
	if len(b) == 0 || b[0] != frameVersion {
		return 0, 0, fmt.Errorf("%w: bad snapshot header version", ErrBadFrame)
	}
	b = b[1:]
	group, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, fmt.Errorf("%w: bad snapshot group", ErrBadFrame)
	}
	b = b[n:]
	size, n = binary.Uvarint(b)
	if n <= 0 || n != len(b) {
		return 0, 0, fmt.Errorf("%w: bad snapshot size", ErrBadFrame)
	}
	return group, size, nil
}
