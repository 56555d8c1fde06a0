package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// appMsg builds a MsgApp carrying n entries of size bytes each.
func appMsg(from, to, index uint64, n, size int) *raftpb.Message {
	m := &raftpb.Message{
		Type:    raftpb.MessageType_MsgApp.Enum(),
		From:    proto.Uint64(from),
		To:      proto.Uint64(to),
		Term:    proto.Uint64(3),
		LogTerm: proto.Uint64(3),
		Index:   proto.Uint64(index),
		Commit:  proto.Uint64(index),
	}
	for i := range n {
		data := bytes.Repeat([]byte{byte(index + uint64(i))}, size)
		m.Entries = append(m.Entries, &raftpb.Entry{
			Term:  proto.Uint64(3),
			Index: proto.Uint64(index + uint64(i) + 1),
			Type:  raftpb.EntryType_EntryNormal.Enum(),
			Data:  data,
		})
	}
	return m
}

func sampleBatch(count int) []Envelope {
	envs := make([]Envelope, count)
	for i := range envs {
		envs[i] = Envelope{Group: uint64(i%7 + 1), Msg: appMsg(1, 2, uint64(i), i%3, 100)}
	}
	envs[0].Msg = &raftpb.Message{Type: raftpb.MessageType_MsgHeartbeat.Enum(), To: proto.Uint64(2)}
	return envs
}

func TestBatchRoundTrip(t *testing.T) {
	for _, count := range []int{0, 1, 2, 100} {
		envs := sampleBatch(max(count, 1))[:count]
		frame, err := appendBatch(nil, envs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeBatch(frame)
		if err != nil {
			t.Fatalf("count %d: %v", count, err)
		}
		if len(got) != len(envs) {
			t.Fatalf("decoded %d envelopes, want %d", len(got), len(envs))
		}
		for i := range envs {
			if got[i].Group != envs[i].Group || !proto.Equal(got[i].Msg, envs[i].Msg) {
				t.Fatalf("envelope %d differs: %v vs %v", i, got[i], envs[i])
			}
		}
	}
	if _, err := appendBatch(nil, []Envelope{{Group: 1}}); err == nil {
		t.Fatal("encoding a nil message succeeded")
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	good, err := appendBatch(nil, sampleBatch(3))
	if err != nil {
		t.Fatal(err)
	}
	huge := binary.AppendUvarint([]byte{frameVersion}, 1<<62)
	for name, in := range map[string][]byte{
		"empty":         nil,
		"version":       append([]byte{99}, good[1:]...),
		"no count":      {frameVersion},
		"huge count":    huge,
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte{}, good...), 0),
		"bad length":    {frameVersion, 1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"length > rest": {frameVersion, 1, 1, 10, 0},
		"bad proto":     {frameVersion, 1, 1, 2, 0xff, 0xff},
	} {
		if _, err := decodeBatch(in); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: decodeBatch = %v, want ErrBadFrame", name, err)
		}
	}
}

func TestSnapshotHeaderFraming(t *testing.T) {
	g, size, err := decodeSnapshotHeader(encodeSnapshotHeader(9, 12345))
	if err != nil || g != 9 || size != 12345 {
		t.Fatalf("snapshot header decoded as %d, %d, %v", g, size, err)
	}
	if _, _, err := decodeSnapshotHeader([]byte{frameVersion, 1}); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("short snapshot header accepted: %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for _, n := range []int{0, 1, 5} {
		frame, err := appendBatch(nil, sampleBatch(max(n, 1))[:n])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
	}
	f.Add([]byte{frameVersion, 1, 1, 10, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		envs, err := decodeBatch(data)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v does not wrap ErrBadFrame", err)
			}
			return
		}
		// Whatever decodes must encode again and decode to the same count.
		frame, err := appendBatch(nil, envs)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := decodeBatch(frame)
		if err != nil || len(again) != len(envs) {
			t.Fatalf("re-decode: %d envelopes, %v; want %d", len(again), err, len(envs))
		}
		for i := range envs {
			if again[i].Group != envs[i].Group || !proto.Equal(again[i].Msg, envs[i].Msg) {
				t.Fatalf("envelope %d changed across a round trip", i)
			}
		}
	})
}

func BenchmarkBatch(b *testing.B) {
	for _, tc := range []struct{ count, entries, size int }{
		{1, 0, 0},      // a lone heartbeat-sized message
		{64, 4, 128},   // many small appends
		{16, 16, 4096}, // fewer, larger appends
	} {
		envs := make([]Envelope, tc.count)
		for i := range envs {
			envs[i] = Envelope{Group: uint64(i % 8), Msg: appMsg(1, 2, uint64(i), tc.entries, tc.size)}
		}
		frame, err := appendBatch(nil, envs)
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("msgs=%d/entries=%d/size=%d", tc.count, tc.entries, tc.size)
		b.Run("encode/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			buf := make([]byte, 0, len(frame))
			for b.Loop() {
				if _, err := appendBatch(buf[:0], envs); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("decode/"+name, func(b *testing.B) {
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeBatch(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
