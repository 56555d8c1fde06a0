package hlc_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/meridian-db/meridian/hlc"
)

func ExampleClock() {
	wall := int64(1_700_000_000_000)
	local := hlc.NewWithWall(1, hlc.DefaultMaxOffset, func() int64 { return wall })

	fmt.Println(local.Now())
	fmt.Println(local.Now()) // the wall clock has not moved

	// A message from node 2, whose clock is 200ms ahead: accepted.
	ts, err := local.Update(hlc.Timestamp{WallMS: wall + 200, Logical: 3, Node: 2})
	fmt.Println(ts, err)

	// A message from node 3, whose clock is 10 minutes ahead: refused.
	_, err = local.Update(hlc.Timestamp{WallMS: wall + (10 * time.Minute).Milliseconds(), Node: 3})
	fmt.Println(errors.Is(err, hlc.ErrClockOffset), local.Offenders())

	// Output:
	// 1700000000000.0@1
	// 1700000000000.1@1
	// 1700000000200.4@1 <nil>
	// true 1
}
