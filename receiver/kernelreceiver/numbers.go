package kernelreceiver

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strings"
)

// checkNumbers finds the numbers in a raw config section that would not
// survive decoding into the settings type t unchanged. confmap's decoder
// (mapstructure) converts with a plain Go conversion: 4294967296 put into a
// uint32 becomes 0, 0.5 becomes 0, 1.5 becomes 1, all without an error, and
// for a cap where 0 means "no limit" that is the opposite of what was
// asked. So every integer setting, of the receiver and of every collector
// (whatever its author declared), is checked here before decoding: the
// value must be a whole number within the range of the field's type. The
// errors name the key ("events_per_second: 0.5 is not a whole number").
// Each error line starts with prefix.
func checkNumbers(prefix string, raw map[string]any, t reflect.Type) error {
	var errs []error
	checkStruct(&errs, prefix, raw, t)
	if len(errs) == 0 {
		return nil
	}
	return numberErrors{errors.Join(errs...)}
}

// numberErrors are checkNumbers' findings, each line naming its key in full.
type numberErrors struct{ error }

func (e numberErrors) Unwrap() error { return e.error }

func checkStruct(errs *[]error, prefix string, raw map[string]any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "squash") {
			checkStruct(errs, prefix, raw, f.Type)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		v, ok := lookupKey(raw, name)
		if !ok {
			continue
		}
		checkValue(errs, prefix+name, v, f.Type)
	}
}

// lookupKey finds a key as mapstructure does: exactly, else ignoring case.
func lookupKey(raw map[string]any, name string) (any, bool) {
	if v, ok := raw[name]; ok {
		return v, true
	}
	for k, v := range raw {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

func checkValue(errs *[]error, key string, v any, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if m, ok := v.(map[string]any); ok {
			checkStruct(errs, key+"::", m, t)
		}
	case reflect.Slice, reflect.Array:
		if items, ok := v.([]any); ok {
			for i, item := range items {
				checkValue(errs, fmt.Sprintf("%s[%d]", key, i), item, t.Elem())
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for k, item := range m {
				checkValue(errs, key+"::"+k, item, t.Elem())
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if err := fitsInteger(v, t); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", key, err))
		}
	}
}

// fitsInteger says why v, as YAML decoded it, does not fit the integer type t.
// Values that are not numbers (a duration string, say) are left to the
// decoder, which reports its own error or applies its hook.
func fitsInteger(v any, t reflect.Type) error {
	var n big.Int
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n.SetInt64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n.SetUint64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
			return fmt.Errorf("%v is not a whole number", v)
		}
		big.NewFloat(f).Int(&n)
	default:
		return nil
	}
	lo, hi := integerRange(t)
	if n.Cmp(lo) < 0 || n.Cmp(hi) > 0 {
		return fmt.Errorf("%v is out of range (%v to %v)", v, lo, hi)
	}
	return nil
}

func integerRange(t reflect.Type) (lo, hi *big.Int) {
	bits := uint(t.Bits())
	one := big.NewInt(1)
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		hi = new(big.Int).Sub(new(big.Int).Lsh(one, bits), one)
		return big.NewInt(0), hi
	}
	hi = new(big.Int).Sub(new(big.Int).Lsh(one, bits-1), one)
	lo = new(big.Int).Neg(new(big.Int).Lsh(one, bits-1))
	return lo, hi
}
