package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op is a command's operation.
type Op byte

// Operations.
const (
	// OpSet sets Args[0] to the string Args[1]; Int is the absolute expiry
	// in ms (0: none). Flags: FlagNX, FlagXX, FlagKeepTTL, FlagGet.
	OpSet Op = 1
	// OpDelete deletes the keys in Args; the result's N counts the ones that existed.
	OpDelete Op = 2
)

// Flags of OpSet.
const (
	FlagNX      uint64 = 1 << 0 // only if the key does not exist
	FlagXX      uint64 = 1 << 1 // only if the key exists
	FlagKeepTTL uint64 = 1 << 2 // keep the existing expiry
	FlagGet     uint64 = 1 << 3 // return the previous value
)

const commandVersion = 1

// ErrBadCommand is returned when a command cannot be decoded.
var ErrBadCommand = errors.New("kv: malformed command")

// Command is one write.
type Command struct {
	Op    Op
	Flags uint64
	Int   int64
	Args  [][]byte
}

// Encode returns the command's log encoding.
func (c Command) Encode() []byte {
	n := 16
	for _, a := range c.Args {
		n += len(a) + binary.MaxVarintLen32
	}
	b := make([]byte, 0, n)
	b = append(b, commandVersion, byte(c.Op))
	b = binary.AppendUvarint(b, c.Flags)
	b = binary.AppendVarint(b, c.Int)
	b = binary.AppendUvarint(b, uint64(len(c.Args)))
	for _, a := range c.Args {
		b = binary.AppendUvarint(b, uint64(len(a)))
		b = append(b, a...)
	}
	return b
}

// DecodeCommand parses an encoded command. The arguments alias b.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) < 2 {
		return c, fmt.Errorf("%w: %d bytes", ErrBadCommand, len(b))
	}
	if b[0] != commandVersion {
		return c, fmt.Errorf("%w: unknown version %d", ErrBadCommand, b[0])
	}
	c.Op = Op(b[1])
	b = b[2:]
	var w int
	if c.Flags, w = binary.Uvarint(b); w <= 0 {
		return c, fmt.Errorf("%w: flags", ErrBadCommand)
	}
	b = b[w:]
	if c.Int, w = binary.Varint(b); w <= 0 {
		return c, fmt.Errorf("%w: integer", ErrBadCommand)
	}
	b = b[w:]
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)) {
		return c, fmt.Errorf("%w: argument count", ErrBadCommand)
	}
	b = b[w:]
	c.Args = make([][]byte, 0, n)
	for range n {
		l, w := binary.Uvarint(b)
		if w <= 0 || l > uint64(len(b)-w) {
			return c, fmt.Errorf("%w: argument length", ErrBadCommand)
		}
		c.Args = append(c.Args, b[w:w+int(l)])
		b = b[w+int(l):]
	}
	if len(b) != 0 {
		return c, fmt.Errorf("%w: %d trailing bytes", ErrBadCommand, len(b))
	}
	return c, nil
}
