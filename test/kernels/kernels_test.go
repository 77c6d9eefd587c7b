package main

import (
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDepends(t *testing.T) {
	out := "linux-image-cloud-amd64\n" +
		"  Depends: linux-image-6.1.0-56-cloud-amd64\n" +
		"  Depends: linux-image-6.1.0-55-cloud-amd64\n"
	if got := parseDepends(out); got != "linux-image-6.1.0-56-cloud-amd64" {
		t.Errorf("got %q", got)
	}
	if got := parseDepends("linux-image-cloud-amd64\n  Recommends: firmware\n"); got != "" {
		t.Errorf("no Depends line, got %q", got)
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd6a5f3000)\n" +
		"\tlibmount.so.1 => /lib/x86_64-linux-gnu/libmount.so.1 (0x00007f3c2a1b2000)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3c29fd1000)\n" +
		"\tlibgone.so.2 => not found\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f3c2a22c000)\n"
	libs, missing := parseLdd(out)
	wantLibs := []string{"/lib/x86_64-linux-gnu/libmount.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if !reflect.DeepEqual(libs, wantLibs) {
		t.Errorf("libs %q, want %q", libs, wantLibs)
	}
	if !reflect.DeepEqual(missing, []string{"libgone.so.2"}) {
		t.Errorf("missing %q", missing)
	}
}

// /init sources run.conf: what it holds must come out of a shell unchanged,
// quotes and all.
func TestRunConfSurvivesTheShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs sh")
	}
	run := `^TestA$|it's "quoted" $(not run)`
	conf := runConf("oom.test", 9*time.Minute, run)
	out, err := exec.Command(sh, "-c", conf+`printf '%s\n%s\n%s' "$TEST" "$TIMEOUT" "$RUN"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "oom.test\n9m0s\n" + run; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestKernelRelease(t *testing.T) {
	k := kernel{Series: "6.12", Package: "linux-image-6.12.117+deb12-cloud-amd64-unsigned", Version: "6.12.117-1~deb12u1",
		Vmlinuz: filepath.Join("cache", "x", "boot", "vmlinuz-6.12.117+deb12-cloud-amd64")}
	if k.Release() != "6.12.117+deb12-cloud-amd64" {
		t.Errorf("release %q", k.Release())
	}
	if s := k.String(); !strings.Contains(s, "6.12.117-1~deb12u1") || !strings.HasPrefix(s, "6.12: ") {
		t.Errorf("String() = %q", s)
	}
}

func TestUnknownSeriesIsAnError(t *testing.T) {
	_, err := fetchKernel(&aptRunner{}, t.TempDir(), "5.10")
	if err == nil || !strings.Contains(err.Error(), "known: 6.1, 6.12") {
		t.Errorf("got %v", err)
	}
}

func TestKernelFacingPackagesAreFoundByImport(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	// go list runs from the repository root, as make test-kernels does.
	t.Chdir("../..")
	pkgs, err := kernelFacingPackages()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"./pkg/bpf", "./internal/cgroupwatch", "./collectors/events/oom", "./collectors/events/dropwatch", "./collectors/events/hungtask"} {
		if !slices.Contains(pkgs, want) {
			t.Errorf("%s missing from %v", want, pkgs)
		}
	}
	for _, notWant := range []string{"./pkg/storage", "./collectors/events/netdev", "./pkg/tracing/tracingtest"} {
		if slices.Contains(pkgs, notWant) {
			t.Errorf("%s does not load BPF programs (or has no tests), yet is in %v", notWant, pkgs)
		}
	}
}
