package stream

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func sameBatch(t *testing.T, got, want Batch) {
	t.Helper()
	if got.Stream != want.Stream || got.Epoch != want.Epoch || got.Cluster != want.Cluster ||
		got.Prev != want.Prev || got.ClosedMS != want.ClosedMS || len(got.Changes) != len(want.Changes) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	for i, c := range want.Changes {
		g := got.Changes[i]
		if g.Index != c.Index || g.TimeMS != c.TimeMS || !bytes.Equal(g.Data, c.Data) {
			t.Fatalf("change %d: %+v, want %+v", i, g, c)
		}
	}
}

func testBatch(prev uint64, n, size int) Batch {
	b := Batch{Stream: 42, Epoch: 3, Cluster: "prod-eu", Prev: prev, ClosedMS: 1_700_000_000_123}
	for i := range n {
		b.Changes = append(b.Changes, Change{
			Index:  prev + 1 + uint64(i)*2,
			TimeMS: 1_700_000_000_000 + int64(i),
			Data:   bytes.Repeat([]byte(fmt.Sprintf("key%d=value%d;", i, i)), size),
		})
	}
	return b
}

func TestBatchRoundTrip(t *testing.T) {
	cases := map[string]Batch{
		"heartbeat":         {Stream: 1, Epoch: 1, Cluster: "c", Prev: 99, ClosedMS: 5},
		"negative closed":   {Stream: 1, Cluster: "", Prev: 0, ClosedMS: -7, Changes: []Change{{Index: 1, TimeMS: -3}}},
		"small":             testBatch(10, 3, 1),
		"large, compresses": testBatch(1<<40, 50, 40),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			raw, wire, err := b.encode()
			if err != nil {
				t.Fatal(err)
			}
			if len(wire) != raw && len(wire) >= raw {
				t.Fatalf("compressed form %d bytes, not smaller than %d", len(wire), raw)
			}
			if raw >= 10*CompressMinBytes && wire[1] != flagSnappy {
				t.Fatalf("a %d-byte repetitive batch was not compressed", raw)
			}
			got, err := DecodeBatch(wire)
			if err != nil {
				t.Fatal(err)
			}
			sameBatch(t, got, b)
		})
	}
}

func TestBatchRefusesMalformed(t *testing.T) {
	good, err := (&Batch{Stream: 1, Cluster: "c", Prev: 4, Changes: []Change{{Index: 5, Data: []byte("x")}}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"empty":          nil,
		"version":        append([]byte{9}, good[1:]...),
		"flags":          append([]byte{batchVersion, 0x80}, good[2:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(bytes.Clone(good), 0),
		"huge count":     {batchVersion, 0, 1, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"zero delta":     {batchVersion, 0, 1, 1, 0, 4, 0, 1, 0, 0, 0},
		"bad snappy":     {batchVersion, flagSnappy, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"long cluster":   {batchVersion, 0, 1, 1, 0xff, 0x7f},
		"overflow index": {batchVersion, 0, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 1, 1, 0, 0},
	}
	for name, p := range bad {
		if _, err := DecodeBatch(p); !errors.Is(err, ErrBadBatch) {
			t.Errorf("%s: %v, want ErrBadBatch", name, err)
		}
	}
	unordered := Batch{Prev: 5, Changes: []Change{{Index: 5}}}
	if _, err := unordered.Encode(); !errors.Is(err, ErrBadBatch) {
		t.Fatalf("encoding a change at Prev: %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for _, b := range []Batch{{Stream: 1, Cluster: "c", Prev: 3, ClosedMS: 9}, testBatch(7, 4, 1), testBatch(0, 20, 30)} {
		p, err := b.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Add([]byte{batchVersion, flagSnappy, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := DecodeBatch(p)
		if err != nil {
			return
		}
		if err := b.validate(); err != nil {
			t.Fatalf("decoder accepted an unordered batch: %v", err)
		}
		again, err := b.Encode()
		if err != nil {
			t.Fatalf("re-encoding a decoded batch: %v", err)
		}
		b2, err := DecodeBatch(again)
		if err != nil {
			t.Fatalf("decoding a re-encoded batch: %v", err)
		}
		sameBatch(t, b2, b)
	})
}

func BenchmarkEncode(b *testing.B) {
	batch := testBatch(1000, 256, 4)
	raw, _, _ := batch.encode()
	b.SetBytes(int64(raw))
	for b.Loop() {
		if _, err := batch.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	batch := testBatch(1000, 256, 4)
	raw, wire, _ := batch.encode()
	b.SetBytes(int64(raw))
	for b.Loop() {
		if _, err := DecodeBatch(wire); err != nil {
			b.Fatal(err)
		}
	}
}
