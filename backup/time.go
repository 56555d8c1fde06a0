package backup

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/meridian-db/meridian/hlc"
)

// ParseTime reads the time a restore goes back to: RFC 3339 (with or
// without fractions of a second, "T" or a space between date and time,
// a zone or UTC), Unix seconds, or Unix milliseconds (13 digits or more).
// Stamps have millisecond resolution: the state at T holds every entry
// stamped in T's millisecond or before.
func ParseTime(s string) (hlc.Timestamp, error) {
	s = strings.TrimSpace(s)
	var t time.Time
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if len(strings.TrimLeft(s, "-")) >= 13 {
			t = time.UnixMilli(n)
		} else {
			t = time.Unix(n, 0)
		}
	} else {
		var perr error
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
			if t, perr = time.Parse(layout, s); perr == nil {
				break
			}
		}
		if perr != nil {
			return hlc.Timestamp{}, fmt.Errorf("time %q: want RFC 3339 (2006-01-02T15:04:05Z), Unix seconds or milliseconds", s)
		}
	}
	return AtMillis(t.UnixMilli()), nil
}

// AtMillis is the cut that holds everything stamped in millisecond ms or
// before.
func AtMillis(ms int64) hlc.Timestamp {
	return hlc.Timestamp{WallMS: ms, Logical: math.MaxUint32, Node: math.MaxUint32}
}
