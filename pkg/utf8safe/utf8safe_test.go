package utf8safe

import (
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv/fuzzseed"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"eth0":               "eth0",
		"grüße":              "grüße",
		"a\xffb":             "a\uFFFDb",
		"\xff\xfe":           "\uFFFD\uFFFD", // one per byte
		"\xe2\x82":           "\uFFFD\uFFFD", // a cut sequence: each of its bytes
		"ok\xc3\xa9\xc3":     "ok\u00e9\uFFFD",
		"\xed\xa0\x80":       "\uFFFD\uFFFD\uFFFD", // a surrogate is not valid UTF-8
		"worker\x80\x81\x82": "worker\uFFFD\uFFFD\uFFFD",
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMap(t *testing.T) {
	m := pcommon.NewMap()
	m.PutStr("comm", "x\xff")
	m.PutStr("bad\xfekey", "v")
	m.PutInt("n", 3)
	nested := m.PutEmptyMap("sock")
	nested.PutStr("ifname", "\xc0")
	sl := m.PutEmptySlice("stack")
	sl.AppendEmpty().SetStr("f\x80")
	sl.AppendEmpty().SetStr("fine")
	Map(m)
	for k, v := range m.All() {
		if !utf8.ValidString(k) {
			t.Errorf("key %q is still invalid", k)
		}
		if !utf8.ValidString(v.AsString()) {
			t.Errorf("%s = %q is still invalid", k, v.AsString())
		}
	}
	if v, _ := m.Get("comm"); v.Str() != "x\uFFFD" {
		t.Errorf("comm = %q", v.Str())
	}
	if v, ok := m.Get("bad\uFFFDkey"); !ok || v.Str() != "v" {
		t.Errorf("renamed key lost its value: %v %v", ok, v.AsRaw())
	}
	if v, _ := m.Get("n"); v.Int() != 3 {
		t.Errorf("int changed: %v", v.AsRaw())
	}
	if m.Len() != 5 {
		t.Errorf("%d keys, want 5: %v", m.Len(), m.AsRaw())
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "eth0", "a\xffb", "\xe2\x82", "grüße"} {
		fuzzseed.Add(f, s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := String(s)
		if !utf8.ValidString(got) {
			t.Fatalf("String(%q) = %q is not valid UTF-8", s, got)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("valid %q changed to %q", s, got)
		}
		if String(got) != got {
			t.Fatalf("not idempotent on %q", s)
		}
	})
}

func TestInvalidFindsWhatMapFixes(t *testing.T) {
	m := pcommon.NewMap()
	m.PutStr("ok", "fine")
	m.PutStr("comm", "x\xff")
	m.PutEmptySlice("stack").AppendEmpty().SetStr("\xc3")
	m.PutEmptyMap("sock").PutStr("if\xfe", "lo")
	if got := Invalid(m); len(got) != 3 {
		t.Fatalf("Invalid = %q, want comm, stack[0], sock.if…", got)
	}
	Map(m)
	if got := Invalid(m); len(got) != 0 {
		t.Fatalf("after Map, Invalid = %q", got)
	}
}
