package storage

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// AttributeWriter is implemented by event data that puts its attributes
// itself, without reflection: for events that can arrive by the tens of
// thousands a second. The result must be exactly what the reflective
// mapping (PutAttributes) gives for the same value; the reflective mapping
// stays the definition, the documentation source and the fallback. Take
// names and omitempty from AttrsOf, so a renamed `json` tag needs no change
// to the writer, and test the writer with CheckWriter (the tracingtest
// harness does it for every event a collector saves).
type AttributeWriter interface {
	PutAttributes(attrs pcommon.Map)
}

// Attr is one attribute of an event type as the reflective mapping names
// it, with typed Put methods that honour omitempty the same way.
type Attr struct {
	Name      string
	OmitEmpty bool
}

// Attrs are the attributes of a struct type by Go field path ("Reason",
// "Sock.Dport" for a named nested struct, the field's own name for one of
// an embedded struct).
type Attrs map[string]Attr

// AttrsOf lists T's attributes (T a struct type); see Attrs.
func AttrsOf[T any]() Attrs {
	t := reflect.TypeFor[T]()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := Attrs{}
	for _, f := range planFor(t) {
		out[goPath(t, f.index)] = Attr{Name: f.name, OmitEmpty: f.omitEmpty}
	}
	return out
}

func goPath(t reflect.Type, index []int) string {
	var parts []string
	for i, x := range index {
		if i > 0 && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		sf := t.Field(x)
		if !sf.Anonymous || i == len(index)-1 {
			parts = append(parts, sf.Name)
		}
		t = sf.Type
	}
	return strings.Join(parts, ".")
}

// Must returns the attribute of the Go field path, and panics when T has
// none: a writer naming a field that does not exist is a programming
// error, found the first time the package initialises.
func (a Attrs) Must(goField string) Attr {
	at, ok := a[goField]
	if !ok {
		panic(fmt.Sprintf("storage: no attribute for field %q", goField))
	}
	return at
}

// PutStr puts a string.
func (a Attr) PutStr(m pcommon.Map, v string) {
	if a.OmitEmpty && v == "" {
		return
	}
	m.PutStr(a.Name, v)
}

// PutInt puts a signed integer.
func (a Attr) PutInt(m pcommon.Map, v int64) {
	if a.OmitEmpty && v == 0 {
		return
	}
	m.PutInt(a.Name, v)
}

// PutUint puts an unsigned integer: an int, or its decimal string above
// math.MaxInt64, as the reflective mapping does.
func (a Attr) PutUint(m pcommon.Map, v uint64) {
	if a.OmitEmpty && v == 0 {
		return
	}
	if v > math.MaxInt64 {
		m.PutStr(a.Name, strconv.FormatUint(v, 10))
		return
	}
	m.PutInt(a.Name, int64(v))
}

// PutBool puts a bool.
func (a Attr) PutBool(m pcommon.Map, v bool) {
	if a.OmitEmpty && !v {
		return
	}
	m.PutBool(a.Name, v)
}

// PutDouble puts a float.
func (a Attr) PutDouble(m pcommon.Map, v float64) {
	if a.OmitEmpty && v == 0 {
		return
	}
	m.PutDouble(a.Name, v)
}

// PutStrs puts a string slice as an array value. Like the reflective
// mapping, omitempty drops only a nil slice.
func (a Attr) PutStrs(m pcommon.Map, v []string) {
	if v == nil && a.OmitEmpty {
		return
	}
	s := m.PutEmptySlice(a.Name)
	s.EnsureCapacity(len(v))
	for _, x := range v {
		s.AppendEmpty().SetStr(x)
	}
}

// putData maps data into attrs: through its AttributeWriter when it has
// one, else by reflection.
func putData(attrs pcommon.Map, data any) {
	if w, ok := data.(AttributeWriter); ok {
		w.PutAttributes(attrs)
		return
	}
	PutAttributes(attrs, data)
}

// CheckWriter compares data's AttributeWriter with the reflective mapping
// of the same value, and describes the first difference; nil when they
// agree or data has no writer.
func CheckWriter(data any) error {
	w, ok := data.(AttributeWriter)
	if !ok {
		return nil
	}
	fast, slow := pcommon.NewMap(), pcommon.NewMap()
	w.PutAttributes(fast)
	PutAttributes(slow, data)
	var fk, sk []string
	for k := range fast.All() {
		fk = append(fk, k)
	}
	for k := range slow.All() {
		sk = append(sk, k)
	}
	if fast.Equal(slow) && slices.Equal(fk, sk) {
		return nil
	}
	f, s := fast.AsRaw(), slow.AsRaw()
	var diffs []string
	for k, sv := range s {
		fv, ok := f[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s missing (reflection gives %v)", k, sv))
		case !reflect.DeepEqual(fv, sv):
			diffs = append(diffs, fmt.Sprintf("%s = %#v, reflection gives %#v", k, fv, sv))
		}
	}
	for k, fv := range f {
		if _, ok := s[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s = %v not in the reflective mapping", k, fv))
		}
	}
	if len(diffs) == 0 { // same content, different order
		diffs = append(diffs, fmt.Sprintf("order %v, reflection gives %v", fk, sk))
	}
	return fmt.Errorf("%T: PutAttributes differs from the reflective mapping: %s", data, strings.Join(diffs, "; "))
}
