// Package utf8safe makes text from the kernel and from other processes
// (command names, interface names, cgroup paths, symbols) valid UTF-8
// before it leaves the receiver. Any unprivileged process can set its comm
// to arbitrary bytes; passed on verbatim they make a whole OTLP/JSON batch
// unreadable to strict parsers.
//
// Each byte that does not belong to a valid UTF-8 sequence becomes one
// U+FFFD (the replacement character), as encoding/json does: the number of
// bad bytes stays visible and valid text around them is kept as it was.
package utf8safe

import (
	"strconv"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// String returns s with each invalid byte replaced by U+FFFD. A valid s is
// returned as is, without allocating.
func String(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
			i++
			continue
		}
		out = append(out, s[i:i+size]...)
		i += size
	}
	return string(out)
}

// Map makes every key and string value in m valid UTF-8, descending into
// nested maps and slices.
func Map(m pcommon.Map) {
	var badKeys []string
	for k, v := range m.All() {
		if !utf8.ValidString(k) {
			badKeys = append(badKeys, k)
		}
		Value(v)
	}
	for _, k := range badKeys {
		v, _ := m.Get(k)
		moved := pcommon.NewValueEmpty()
		v.MoveTo(moved)
		m.Remove(k)
		moved.MoveTo(m.PutEmpty(String(k)))
	}
}

// Value makes v valid UTF-8 where it holds text.
func Value(v pcommon.Value) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		if s := v.Str(); !utf8.ValidString(s) {
			v.SetStr(String(s))
		}
	case pcommon.ValueTypeMap:
		Map(v.Map())
	case pcommon.ValueTypeSlice:
		sl := v.Slice()
		for i := range sl.Len() {
			Value(sl.At(i))
		}
	}
}

// Invalid lists the keys (dotted, with [i] for slice elements) of m whose
// name or string value is not valid UTF-8: empty once Map ran over m.
func Invalid(m pcommon.Map) []string {
	var out []string
	invalidIn(&out, "", m)
	return out
}

func invalidIn(out *[]string, prefix string, m pcommon.Map) {
	for k, v := range m.All() {
		key := prefix + k
		if !utf8.ValidString(k) {
			*out = append(*out, key)
		}
		invalidValue(out, key, v)
	}
}

func invalidValue(out *[]string, key string, v pcommon.Value) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		if !utf8.ValidString(v.Str()) {
			*out = append(*out, key)
		}
	case pcommon.ValueTypeMap:
		invalidIn(out, key+".", v.Map())
	case pcommon.ValueTypeSlice:
		for i, e := range v.Slice().All() {
			invalidValue(out, key+"["+strconv.Itoa(i)+"]", e)
		}
	}
}
