package storage

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
)

type writerEvent struct {
	header
	Sock  sock     `json:"sock"`
	Name  string   `json:"name,omitempty"`
	Big   uint64   `json:"big"`
	Stack []string `json:"stack,omitempty"`
	bug   string   // what PutAttributes gets wrong, per test
}

var writerAttrs = AttrsOf[writerEvent]()

func (e *writerEvent) PutAttributes(m pcommon.Map) {
	writerAttrs.Must("Pid").PutUint(m, uint64(e.Pid))
	m.PutStr(writerAttrs.Must("Comm").Name, cStr(e.Comm[:]))
	saddr, _ := e.Sock.Saddr.MarshalText()
	writerAttrs.Must("Sock.Saddr").PutStr(m, string(saddr))
	writerAttrs.Must("Sock.Dport").PutUint(m, uint64(e.Sock.Dport))
	if e.bug != "name" {
		writerAttrs.Must("Name").PutStr(m, e.Name)
	}
	writerAttrs.Must("Big").PutUint(m, e.Big)
	writerAttrs.Must("Stack").PutStrs(m, e.Stack)
	if e.bug == "extra" {
		m.PutStr("extra", "x")
	}
}

func cStr(b []int8) string {
	out := []byte{}
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

func TestAttrsOfNamesFieldsAsTheMappingDoes(t *testing.T) {
	a := AttrsOf[writerEvent]()
	assert.Equal(t, Attr{Name: "pid"}, a["Pid"], "an embedded struct's field joins the parent")
	assert.Equal(t, Attr{Name: "sock.dport"}, a["Sock.Dport"], "a named nested struct is prefixed")
	assert.Equal(t, Attr{Name: "name", OmitEmpty: true}, a["Name"])
	assert.NotContains(t, a, "bug", "unexported fields have no attribute")
	assert.Panics(t, func() { a.Must("NoSuchField") })
}

func TestCheckWriter(t *testing.T) {
	e := &writerEvent{Name: "x", Big: 1 << 63, Stack: []string{"a", "b"}}
	e.Pid = 7
	copy(e.Comm[:], []int8{'s', 'h'})
	e.Sock.Dport = 53
	require.NoError(t, CheckWriter(e), "the writer agrees with reflection, a uint64 above MaxInt64 included")
	require.NoError(t, CheckWriter(&writerEvent{}), "zero values: omitempty alike")
	require.NoError(t, CheckWriter(&writerEvent{Stack: []string{}}), "an empty, non-nil slice is kept alike")

	e.bug = "name"
	assert.ErrorContains(t, CheckWriter(e), "name missing (reflection gives x)")
	e.bug = "extra"
	assert.ErrorContains(t, CheckWriter(e), "extra = x not in the reflective mapping")
	assert.NoError(t, CheckWriter(struct{ A int }{1}), "data without a writer is not checked")
}

// Save uses the writer, and reports a disagreeing one to CheckWriters.
func TestSaveUsesTheWriter(t *testing.T) {
	var reported []error
	logs := &consumertest.LogsSink{}
	s := newTestSink(t, logs, Options{CheckWriters: func(_ string, err error) { reported = append(reported, err) }})
	e := &writerEvent{Name: "n", bug: "extra"}
	require.NoError(t, s.For("event").Save("w", "", time.Now(), e))
	require.NoError(t, s.Shutdown(context.Background())) // flushes
	attrs := logs.AllLogs()[0].ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes()
	v, ok := attrs.Get("extra")
	require.True(t, ok, "the writer's output is what is saved")
	assert.Equal(t, "x", v.Str())
	require.Len(t, reported, 1)
	assert.ErrorContains(t, reported[0], "extra = x not in the reflective mapping")
}
