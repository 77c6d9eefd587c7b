package bpf

import (
	"fmt"
	"unsafe"
)

// Decode copies an event's bytes into out, a bpf2go-generated type: those
// mirror the C struct's layout byte for byte (padding included) in the
// host's byte order, so a copy is the whole decoding, without the
// reflection of encoding/binary. A program may send only the first part of
// its record (dropwatch leaves off the stack it did not capture): raw must
// hold at least minLen bytes (0: all of T), and what it does not hold reads
// as zero.
func Decode[T any](raw []byte, out *T, minLen int) error {
	size := int(unsafe.Sizeof(*out))
	if minLen <= 0 || minLen > size {
		minLen = size
	}
	if len(raw) < minLen {
		return fmt.Errorf("bpf: event of %d bytes, want at least %d for %T", len(raw), minLen, *out)
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(out)), size)
	n := copy(dst, raw)
	clear(dst[n:])
	return nil
}
