package crdt_test

import (
	"fmt"

	"github.com/meridian-db/meridian/crdt"
	"github.com/meridian-db/meridian/hlc"
)

func Example() {
	at := func(region string, ms int64) crdt.Stamp {
		return crdt.Stamp{Region: region, Time: hlc.Timestamp{WallMS: ms}}
	}

	// Two regions write the same key, neither seeing the other's write.
	var us, eu crdt.Register
	us.Set(at("us", 1000), []byte("blue"), "")
	eu.Set(at("eu", 1005), []byte("green"), "")

	// us receives eu's state from the stream and merges it into its own.
	received, err := crdt.Decode(eu.Encode())
	if err != nil {
		panic(err)
	}
	merged, conflicts, err := crdt.Merge(&us, received)
	if err != nil {
		panic(err)
	}
	value, _ := merged.(*crdt.Register).Get()
	fmt.Printf("value: %s\n", value)
	for _, c := range conflicts {
		fmt.Printf("conflict (%s):", c.Rule)
		for _, v := range c.Versions {
			fmt.Printf(" %s from %s at %s,", v.Value, v.Region, v.Time)
		}
		fmt.Printf(" winner %s\n", c.Winner.Value)
	}

	// A write in us that has seen both replaces them: no conflict.
	r := merged.(*crdt.Register)
	r.Set(at("us", 1001), []byte("teal"), "")
	merged, conflicts, _ = crdt.Merge(received, r)
	value, _ = merged.(*crdt.Register).Get()
	fmt.Printf("value: %s, %d conflicts\n", value, len(conflicts))

	// Output:
	// value: green
	// conflict (lww): blue from us at 1000.0@0, green from eu at 1005.0@0, winner green
	// value: teal, 0 conflicts
}
