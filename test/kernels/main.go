// Command kernels runs the kernel-facing test packages on other kernels and
// writes docs/kernel-matrix.md from what the BPF loader attached.
//
// Each package's test binary is built once (static), then run in a QEMU
// guest per Debian kernel (6.1 and 6.12 by default: they have the kprobes
// and fentry this project's own machines lack) and on this machine. A guest
// boots straight into an initramfs holding busybox, the programs the tests
// call, and the test binary; its /init prints the test's exit code on the
// serial console, where this program reads it.
//
// From the repository root:
//
//	go run ./test/kernels [-kernels 6.1,6.12] [-host=false] [-run REGEXP] [-matrix docs/kernel-matrix.md]
//
// It exits non-zero if any run failed. See `make test-kernels`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// bpfPackage is the BPF platform: it and every package with tests that
// loads programs through it are "the kernel-facing packages".
const bpfPackage = "github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"

// kernelFacingPackages lists the BPF platform and the packages under
// ./pkg, ./internal and ./collectors that import it and have tests, so that a new collector is in
// the matrix without anyone remembering to add it.
func kernelFacingPackages() ([]string, error) {
	out, err := exec.Command("go", "list", "-f",
		"{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{range .Imports}} {{.}}{{end}}{{end}}", "./pkg/...", "./internal/...", "./collectors/...").Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	pkgs := []string{"./pkg/bpf"}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 1 && slices.Contains(fields[1:], bpfPackage) {
			pkgs = append(pkgs, "./"+strings.TrimPrefix(fields[0], "github.com/otelcol-kernel/otelcol-kernel/"))
		}
	}
	return pkgs, nil
}

type config struct {
	kernels  []string
	packages []string
	cache    string
	host     bool
	matrix   string
	timeout  time.Duration
	run      string
}

func main() {
	var cfg config
	var kernels, packages string
	flag.StringVar(&kernels, "kernels", "6.1,6.12", "kernel series to boot under QEMU, comma-separated (empty: none)")
	flag.StringVar(&packages, "packages", "", "test packages, comma-separated (default: ./pkg/bpf and every package with tests that imports it)")
	flag.StringVar(&cfg.cache, "cache", ".cache/kernels", "directory for kernels, logs and the initramfs")
	flag.BoolVar(&cfg.host, "host", true, "also run the test binaries on this machine (its own column)")
	flag.StringVar(&cfg.matrix, "matrix", "docs/kernel-matrix.md", "where to write the matrix (empty: do not write it); a run limited by -packages, -run or -kernels writes it only when this is given")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "limit per guest boot (and per run on this machine)")
	flag.StringVar(&cfg.run, "run", "", "passed on as -test.run")
	flag.Parse()
	cfg.kernels = splitList(kernels)
	cfg.packages = splitList(packages)
	// The committed matrix is the whole run's: a partial run (one package,
	// some tests, other kernels) would overwrite it with its own rows.
	explicit := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if (explicit["packages"] || explicit["run"] || explicit["kernels"]) && !explicit["matrix"] {
		cfg.matrix = ""
	}
	if len(cfg.packages) == 0 {
		var err error
		if cfg.packages, err = kernelFacingPackages(); err != nil {
			fmt.Fprintln(os.Stderr, "test/kernels:", err)
			os.Exit(1)
		}
	}
	if flag.NArg() > 0 || len(cfg.packages) == 0 {
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := mainErr(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test/kernels:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// testBinary is one package's test binary.
type testBinary struct {
	Package string // as given
	Dir     string // its source directory: the working directory on this machine
	Name    string // oom
	Path    string // <tmp>/oom.test
}

func mainErr(ctx context.Context, cfg config) (bool, error) {
	start := time.Now()
	if err := os.MkdirAll(filepath.Join(cfg.cache, "logs"), 0o755); err != nil {
		return false, err
	}
	var qemu string
	if len(cfg.kernels) > 0 {
		var err error
		if qemu, err = exec.LookPath("qemu-system-x86_64"); err != nil {
			return false, fmt.Errorf("qemu-system-x86_64 not found: install Debian's qemu-system-x86 (make test-kernels does)")
		}
	}

	// 1. Kernels.
	apt := &aptRunner{ctx: ctx}
	var kernels []kernel
	for _, series := range cfg.kernels {
		k, err := fetchKernel(apt, cfg.cache, series)
		if err != nil {
			return false, fmt.Errorf("kernel %s: %w", series, err)
		}
		fmt.Println("kernel", k)
		kernels = append(kernels, k)
	}

	// 2. Test binaries, built once.
	tmp, err := os.MkdirTemp("", "kernel-matrix-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	bins, err := buildTests(ctx, cfg.packages, tmp)
	if err != nil {
		return false, err
	}

	// 3. The initramfs every boot shares.
	base := filepath.Join(tmp, "base.cpio")
	if len(kernels) > 0 {
		warnings, err := buildBaseInitramfs(base)
		if err != nil {
			return false, fmt.Errorf("initramfs: %w", err)
		}
		for _, w := range warnings {
			fmt.Println("warning:", w)
		}
	}

	testTimeout := guestTestTimeout(cfg.timeout)
	var runs []*run
	var columns []matrixColumn
	summaryKernels := []string{}
	for _, k := range kernels {
		col := matrixColumn{Heading: k.Series}
		uname := ""
		for _, b := range bins {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			r, err := bootOne(ctx, cfg, qemu, k, b, base, tmp, testTimeout)
			if err != nil {
				return false, err
			}
			runs = append(runs, r)
			col.Runs = append(col.Runs, matrixRun{Passed: r.Passed, Attached: r.Out.Attached})
			if r.Out.Uname != "" {
				uname = r.Out.Uname
			}
		}
		columns = append(columns, col)
		summaryKernels = append(summaryKernels, fmt.Sprintf("%s (guest uname -r: %s)", k, orUnknown(uname)))
	}
	if cfg.host {
		release := hostRelease()
		col := matrixColumn{Heading: "this machine (" + majorMinor(release) + ")"}
		for _, b := range bins {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			r, err := runHost(ctx, cfg, col.Heading, b, testTimeout)
			if err != nil {
				return false, err
			}
			runs = append(runs, r)
			col.Runs = append(col.Runs, matrixRun{Passed: r.Passed, Attached: r.Out.Attached})
		}
		columns = append(columns, col)
		summaryKernels = append(summaryKernels, fmt.Sprintf("%s: uname -r %s", col.Heading, release))
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}

	summary := renderSummary(summaryKernels, runs, time.Since(start))
	fmt.Print("\n" + summary)
	summaryPath := filepath.Join(cfg.cache, "logs", "summary.txt")
	if err := os.WriteFile(summaryPath, []byte(summary), 0o644); err != nil {
		return false, err
	}
	if cfg.matrix != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.matrix), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(cfg.matrix, []byte(renderMatrix(columns, cfg.packages)), 0o644); err != nil {
			return false, err
		}
		fmt.Println("matrix written to", cfg.matrix)
	}
	for _, r := range runs {
		if !r.Passed {
			return false, nil
		}
	}
	return true, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// guestTestTimeout leaves the boot and the power-off some of the boot's
// limit, so that a hanging test ends with Go's own timeout report (which
// names the test and shows its goroutines) rather than a killed QEMU.
func guestTestTimeout(boot time.Duration) time.Duration {
	margin := min(max(boot/10, 30*time.Second), 2*time.Minute)
	if margin > boot/2 {
		margin = boot / 2
	}
	return boot - margin
}

func hostRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// buildTests compiles each package's tests into a static binary.
func buildTests(ctx context.Context, packages []string, dir string) ([]testBinary, error) {
	var bins []testBinary
	used := map[string]bool{}
	for _, pkg := range packages {
		out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", pkg).Output()
		if err != nil {
			return nil, fmt.Errorf("go list %s: %w", pkg, err)
		}
		src := strings.TrimSpace(string(out))
		name := filepath.Base(src)
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s%d", filepath.Base(src), i)
		}
		used[name] = true
		b := testBinary{Package: pkg, Dir: src, Name: name, Path: filepath.Join(dir, name+".test")}
		fmt.Printf("building %s\n", b.Path)
		cmd := exec.CommandContext(ctx, "go", "test", "-c", "-ldflags=-s -w", "-o", b.Path, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go test -c %s: %w", pkg, err)
		}
		if _, err := os.Stat(b.Path); err != nil {
			return nil, fmt.Errorf("go test -c %s wrote no binary (a package without tests?)", pkg)
		}
		bins = append(bins, b)
	}
	return bins, nil
}

// accelArgs uses KVM only where the CPU offers hardware virtualization;
// elsewhere (these machines: a PVM-based /dev/kvm) plain emulation, single
// threaded, which was the stable choice (shared/notes/qemu.md).
func accelArgs() []string {
	info, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(info), "\n") {
		if !strings.HasPrefix(line, "flags") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if f == "vmx" || f == "svm" {
				if _, err := os.Stat("/dev/kvm"); err == nil {
					return []string{"-accel", "kvm", "-cpu", "host"}
				}
			}
		}
		break
	}
	return []string{"-accel", "tcg,thread=single"}
}

func openLog(cache, name string) (*os.File, string, error) {
	path := filepath.Join(cache, "logs", name+".log")
	f, err := os.Create(path)
	return f, path, err
}

// bootOne boots kernel k with b's test binary and reads its result.
func bootOne(ctx context.Context, cfg config, qemu string, k kernel, b testBinary, base, tmp string, testTimeout time.Duration) (*run, error) {
	r := &run{Column: k.Series, Package: b.Package, Name: b.Name, Guest: true}
	initrd := filepath.Join(tmp, fmt.Sprintf("initrd-%s-%s.cpio", k.Series, b.Name))
	if err := writeBootInitramfs(initrd, base, b.Path, runConf(b.Name+".test", testTimeout, cfg.run), k.LoopModule); err != nil {
		return nil, fmt.Errorf("initramfs for %s: %w", b.Name, err)
	}
	defer os.Remove(initrd)
	logf, logPath, err := openLog(cfg.cache, k.Series+"-"+b.Name)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r.Log = logPath
	argv := append([]string{qemu, "-nodefaults", "-no-user-config"}, accelArgs()...)
	argv = append(argv, "-m", "1024M", "-smp", "2", "-display", "none", "-monitor", "none", "-serial", "stdio",
		"-no-reboot", "-kernel", k.Vmlinuz, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 quiet")
	fmt.Fprintf(logf, "# kernel %s\n# %s\n", k, strings.Join(argv, " "))
	fmt.Printf("== boot %s (%s) with %s\n", k.Series, k.Release(), b.Name)
	p := newOutputParser(true)
	sink := newLineSink(fmt.Sprintf("[%s %s] ", k.Series, b.Name), os.Stdout, logf, p)
	t0 := time.Now()
	timedOut, err := execute(ctx, argv, "", os.Environ(), cfg.timeout, 30*time.Second, sink)
	r.Duration = time.Since(t0)
	r.Out = p.Result()
	r.Why = judgeGuest(r.Out, timedOut, cfg.timeout)
	if err != nil && !timedOut && !r.Out.Marker {
		r.Why = append(r.Why, "qemu: "+err.Error())
	}
	r.Passed = len(r.Why) == 0 && ctx.Err() == nil
	return r, nil
}

// runHost runs b's test binary on this machine, from its package directory
// (as go test would).
func runHost(ctx context.Context, cfg config, column string, b testBinary, testTimeout time.Duration) (*run, error) {
	r := &run{Column: column, Package: b.Package, Name: b.Name}
	logf, logPath, err := openLog(cfg.cache, "host-"+b.Name)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r.Log = logPath
	argv := []string{b.Path, "-test.v", "-test.count=1", "-test.timeout", testTimeout.String()}
	if cfg.run != "" {
		argv = append(argv, "-test.run", cfg.run)
	}
	fmt.Fprintf(logf, "# this machine, uname -r %s\n# %s\n", hostRelease(), strings.Join(argv, " "))
	fmt.Printf("== this machine with %s\n", b.Name)
	p := newOutputParser(false)
	sink := newLineSink(fmt.Sprintf("[host %s] ", b.Name), os.Stdout, logf, p)
	t0 := time.Now()
	timedOut, err := execute(ctx, argv, b.Dir, append(os.Environ(), "OTELCOL_KERNEL_MATRIX=1"), cfg.timeout, 0, sink)
	r.Duration = time.Since(t0)
	r.Out = p.Result()
	r.Why = judgeHost(err, timedOut, cfg.timeout)
	r.Passed = len(r.Why) == 0 && ctx.Err() == nil
	return r, nil
}

// renderSummary lists every run with its result, duration and skips, then
// the totals.
func renderSummary(kernels []string, runs []*run, total time.Duration) string {
	var b strings.Builder
	b.WriteString("== kernel matrix summary\n")
	for _, k := range kernels {
		fmt.Fprintf(&b, "kernel %s\n", k)
	}
	passed, skipped := 0, 0
	for _, r := range runs {
		result := "FAIL"
		if r.Passed {
			result = "pass"
			passed++
		}
		skipped += len(r.Out.Skips)
		fmt.Fprintf(&b, "%s  %-22s %-12s %6.1fs  %d skipped\n", result, r.Column, r.Name, r.Duration.Seconds(), len(r.Out.Skips))
		for _, s := range r.Out.Skips {
			reason := s.Reason
			if reason == "" {
				reason = "(no reason given)"
			}
			fmt.Fprintf(&b, "      skip %s: %s\n", s.Test, reason)
		}
		if !r.Passed {
			for _, w := range r.Why {
				fmt.Fprintf(&b, "      failed: %s\n", w)
			}
			if len(r.Out.Failed) > 0 {
				fmt.Fprintf(&b, "      failing tests: %s\n", strings.Join(r.Out.Failed, ", "))
			}
			fmt.Fprintf(&b, "      log: %s\n", r.Log)
		}
	}
	fmt.Fprintf(&b, "wall time %s\n", total.Round(time.Second))
	fmt.Fprintf(&b, "%d runs, %d passed, %d failed; %d tests skipped\n", len(runs), passed, len(runs)-passed, skipped)
	return b.String()
}
