package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// testdata/gotest.json is real `go test -json` output of a module with a
// passing, failing, skipping, panicking and non-building package.
func TestReport(t *testing.T) {
	in, err := os.Open("testdata/gotest.json")
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var out bytes.Buffer
	if run(in, &out) {
		t.Error("run reported success for failing tests")
	}
	got := out.String()
	lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
	if last := lines[len(lines)-1]; last != "2 passed, 4 failed, 3 skipped" {
		t.Errorf("summary line = %q", last)
	}
	for _, want := range []string{
		"?   \ttsmod/d\t[no test files]\n",
		"FAIL\ttsmod/c [build failed]\n",
		"c/c_test.go:5:32: undefined: undefined\n",
		"--- FAIL: TestFail tsmod/a\n",
		"a_test.go:8: bad value 3\n",
		"--- FAIL: TestSub/three tsmod/a\n",
		"--- FAIL: TestPanics tsmod/b\n",
		"panic: boom",
		"--- SKIP: TestSkip tsmod/a: needs root (CAP_NET_ADMIN)\n",
		"--- SKIP: TestSkipf tsmod/a: no BTF\n",
		"--- SKIP: TestSub/two tsmod/a: sub skip\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}

func TestAllPassed(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"start","Package":"p"}`,
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"--- PASS: TestA (0.00s)\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Output":"PASS\n"}`,
		`{"Action":"output","Package":"p","Output":"ok  \tp\t0.01s\n"}`,
		`{"Action":"pass","Package":"p"}`,
	}, "\n")
	var out bytes.Buffer
	if !run(strings.NewReader(in), &out) {
		t.Errorf("run reported failure:\n%s", out.String())
	}
	if want := "ok  \tp\t0.01s\n\n1 passed, 0 failed, 0 skipped\n"; out.String() != want {
		t.Errorf("report = %q, want %q", out.String(), want)
	}
}

func TestUnfinishedTestFails(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestHang"}`,
		`{"Action":"output","Package":"p","Test":"TestHang","Output":"panic: test timed out after 1s\n"}`,
		`{"Action":"output","Package":"p","Output":"FAIL\tp\t1.0s\n"}`,
		`{"Action":"fail","Package":"p"}`,
	}, "\n")
	var out bytes.Buffer
	if run(strings.NewReader(in), &out) {
		t.Error("run reported success")
	}
	if !strings.Contains(out.String(), "--- FAIL: TestHang p\n") || !strings.HasSuffix(out.String(), "0 passed, 1 failed, 0 skipped\n") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestNoEventsFails(t *testing.T) {
	var out bytes.Buffer
	if run(strings.NewReader("go: cannot find main module\n"), &out) {
		t.Error("run reported success without any test event")
	}
	if !strings.Contains(out.String(), "go: cannot find main module\n") {
		t.Errorf("go's own error not passed through:\n%s", out.String())
	}
}
