package storage

import (
	"bytes"
	"encoding"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// The mapping from the data given to Save to LogRecord attributes. It is
// the contract for collector authors and is documented in README.md
// ("Event data → attributes"); keep the two in step.
//
//   - data is a struct, a pointer to one, or a map with string keys; nil adds nothing.
//   - A struct field is named by its `json` tag (`json:"-"` skips it,
//     `omitempty` drops zero values); a field without a tag uses its Go name
//     in lower case. Unexported fields are skipped.
//   - An embedded struct's fields join the parent's; a named nested struct
//     is flattened with a dot: field `sock` of a struct with `dport` gives `sock.dport`.
//   - Values implementing encoding.TextMarshaler (netip.Addr, net.IP, time.Time, …)
//     become strings of their text form. time.Duration becomes an int of nanoseconds.
//   - Fixed-size byte arrays ([N]byte, [N]int8: C char arrays from BPF) become
//     strings cut at the first NUL. Byte slices become bytes.
//   - Other slices and arrays become array values; maps with string keys become
//     map values; their elements follow these same rules.
//   - Signed ints become ints; unsigned ints become ints, or decimal strings
//     above math.MaxInt64; floats become doubles; nil pointers are omitted.
//   - Anything else (channels, funcs, complex numbers) becomes its fmt.Sprint string.

var (
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	durationType      = reflect.TypeFor[time.Duration]()
)

// PutAttributes maps data into attrs following the rules above.
func PutAttributes(attrs pcommon.Map, data any) {
	if data == nil {
		return
	}
	v := reflect.ValueOf(data)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		if !v.Type().Implements(textMarshalerType) {
			putStruct(attrs, v, planFor(v.Type()))
			return
		}
	case reflect.Map:
		if v.Type().Key().Kind() == reflect.String {
			putMap(attrs, v)
			return
		}
	}
	// A scalar has no field name: it goes under "value".
	putValue(attrs.PutEmpty("value"), v)
}

// field is one attribute of a struct type, with nested structs flattened.
type field struct {
	index     []int // reflect.Value.FieldByIndex path
	name      string
	omitEmpty bool
	doc       string
	goType    reflect.Type
}

var plans sync.Map // reflect.Type → []field

func planFor(t reflect.Type) []field {
	if p, ok := plans.Load(t); ok {
		return p.([]field)
	}
	p := buildPlan(t, nil, "")
	plans.Store(t, p)
	return p
}

func buildPlan(t reflect.Type, index []int, prefix string) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		name, omitEmpty, skip := fieldName(sf)
		if skip {
			continue
		}
		idx := append(append([]int(nil), index...), i)
		ft := sf.Type
		if flattens(ft) {
			inner := ft
			if inner.Kind() == reflect.Pointer {
				inner = inner.Elem()
			}
			p := prefix
			if !sf.Anonymous || hasJSONName(sf) {
				p = prefix + name + "."
			}
			// Pointers in the path are handled at read time (nil → omitted).
			out = append(out, buildPlan(inner, idx, p)...)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		out = append(out, field{index: idx, name: prefix + name, omitEmpty: omitEmpty, doc: sf.Tag.Get("doc"), goType: ft})
	}
	return out
}

// flattens reports whether a field of type t is a nested struct to flatten.
func flattens(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(textMarshalerType) && !t.Implements(textMarshalerType)
}

func hasJSONName(sf reflect.StructField) bool {
	name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
	return name != ""
}

func fieldName(sf reflect.StructField) (name string, omitEmpty, skip bool) {
	tag := sf.Tag.Get("json")
	if tag == "-" {
		return "", false, true
	}
	if !sf.IsExported() && !sf.Anonymous {
		return "", false, true
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = strings.ToLower(sf.Name)
	}
	return name, strings.Contains(","+opts+",", ",omitempty,"), false
}

func putStruct(attrs pcommon.Map, v reflect.Value, plan []field) {
	attrs.EnsureCapacity(attrs.Len() + len(plan))
	for _, f := range plan {
		fv, ok := fieldByIndex(v, f.index)
		if !ok {
			continue
		}
		if fv.Kind() == reflect.Pointer || fv.Kind() == reflect.Interface {
			if fv.IsNil() {
				continue
			}
		}
		if f.omitEmpty && fv.IsZero() {
			continue
		}
		putValue(attrs.PutEmpty(f.name), fv)
	}
}

// fieldByIndex is reflect.Value.FieldByIndex that reports a nil pointer on
// the way instead of panicking.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

// putMap adds a map's entries in key order, so that the same data always
// gives the same record.
func putMap(attrs pcommon.Map, v reflect.Value) {
	attrs.EnsureCapacity(attrs.Len() + v.Len())
	keys := v.MapKeys()
	slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
	for _, k := range keys {
		putValue(attrs.PutEmpty(k.String()), v.MapIndex(k))
	}
}

func putValue(dst pcommon.Value, v reflect.Value) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return // an empty value
		}
		v = v.Elem()
	}
	t := v.Type()
	if t == durationType {
		dst.SetInt(v.Int())
		return
	}
	if t.Implements(textMarshalerType) || (v.CanAddr() && reflect.PointerTo(t).Implements(textMarshalerType)) {
		m, ok := v.Interface().(encoding.TextMarshaler)
		if !ok && v.CanAddr() {
			m, ok = v.Addr().Interface().(encoding.TextMarshaler)
		}
		if ok {
			if text, err := m.MarshalText(); err == nil {
				dst.SetStr(string(text))
				return
			}
		}
	}
	switch v.Kind() {
	case reflect.String:
		dst.SetStr(v.String())
	case reflect.Bool:
		dst.SetBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		dst.SetInt(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := v.Uint()
		if u > math.MaxInt64 {
			dst.SetStr(strconv.FormatUint(u, 10))
		} else {
			dst.SetInt(int64(u))
		}
	case reflect.Float32, reflect.Float64:
		dst.SetDouble(v.Float())
	case reflect.Array:
		if isByteLike(t.Elem()) {
			dst.SetStr(cString(v))
			return
		}
		putSlice(dst.SetEmptySlice(), v)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			dst.SetEmptyBytes().FromRaw(bytes.Clone(v.Bytes()))
			return
		}
		putSlice(dst.SetEmptySlice(), v)
	case reflect.Map:
		if t.Key().Kind() == reflect.String {
			putMap(dst.SetEmptyMap(), v)
			return
		}
		dst.SetStr(fmt.Sprint(v.Interface()))
	case reflect.Struct:
		putStruct(dst.SetEmptyMap(), v, planFor(t))
	default:
		dst.SetStr(fmt.Sprint(v.Interface()))
	}
}

func putSlice(dst pcommon.Slice, v reflect.Value) {
	dst.EnsureCapacity(v.Len())
	for i := range v.Len() {
		putValue(dst.AppendEmpty(), v.Index(i))
	}
}

func isByteLike(t reflect.Type) bool {
	return t.Kind() == reflect.Uint8 || t.Kind() == reflect.Int8
}

// cString reads a C char array up to its first NUL.
func cString(v reflect.Value) string {
	n := v.Len()
	buf := make([]byte, 0, n)
	for i := range n {
		var b byte
		if v.Index(i).Kind() == reflect.Int8 {
			b = byte(v.Index(i).Int())
		} else {
			b = byte(v.Index(i).Uint())
		}
		if b == 0 {
			break
		}
		buf = append(buf, b)
	}
	return string(buf)
}

// FieldDoc describes one attribute a struct type produces, for the generated
// documentation and the convention checks.
type FieldDoc struct {
	// Name is the attribute key. An element of an array of structs (or a
	// struct inside a map value) is named after its parent with "[]": the
	// key pid of each element of blocked_tasks is "blocked_tasks[].pid".
	Name string
	Type string // the attribute value type: string, int, double, bool, bytes, array of …, map
	Doc  string // the field's `doc` tag
	// Key is the element's own key inside its parent ("pid" above), equal
	// to Name for a top-level attribute.
	Key string
	// Nested is true for an element field (Name contains "[]").
	Nested bool
}

// Fields lists the attributes Save produces for values of type t (a struct
// or pointer to struct), in declaration order, each followed by the fields
// of its elements when it is an array or map of structs.
func Fields(t reflect.Type) []FieldDoc {
	return fieldsOf(t, "", false)
}

func fieldsOf(t reflect.Type, prefix string, nested bool) []FieldDoc {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	plan := planFor(t)
	out := make([]FieldDoc, 0, len(plan))
	for _, f := range plan {
		out = append(out, FieldDoc{Name: prefix + f.name, Key: f.name, Type: attrType(f.goType), Doc: f.doc, Nested: nested})
		if elem := structElem(f.goType); elem != nil {
			out = append(out, fieldsOf(elem, prefix+f.name+"[].", true)...)
		}
	}
	return out
}

// structElem is the struct type of the elements of an array, slice or map
// type, or nil when its elements are not structs mapped field by field.
func structElem(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Array, reflect.Slice, reflect.Map:
	default:
		return nil
	}
	e := t.Elem()
	for e.Kind() == reflect.Pointer {
		e = e.Elem()
	}
	if e.Kind() != reflect.Struct || e.Implements(textMarshalerType) || reflect.PointerTo(e).Implements(textMarshalerType) {
		return nil
	}
	return e
}

func attrType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType {
		return "int (ns)"
	}
	if t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType) {
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "int"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return "int"
	case reflect.Uint64, reflect.Uintptr:
		return "int (string above 2^63-1)"
	case reflect.Float32, reflect.Float64:
		return "double"
	case reflect.Array:
		if isByteLike(t.Elem()) {
			return "string"
		}
		return "array of " + attrType(t.Elem())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "bytes"
		}
		return "array of " + attrType(t.Elem())
	case reflect.Map, reflect.Struct:
		return "map"
	}
	return "string"
}
