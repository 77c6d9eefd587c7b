package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// metaPackages names, per kernel series, the Debian bookworm package that
// always depends on that series' newest cloud kernel image. The cloud
// flavour is built with kprobes, BTF and everything a boot without modules
// needs (see shared/notes/qemu.md).
var metaPackages = map[string]string{
	"6.1":  "linux-image-cloud-amd64",
	"6.12": "linux-image-6.12-cloud-amd64",
}

// kernel is one guest kernel, unpacked in the cache.
type kernel struct {
	Series  string // the column: "6.1"
	Package string // linux-image-6.1.0-56-cloud-amd64-unsigned
	Version string // the package's version: 6.1.192-2
	Vmlinuz string // path of boot/vmlinuz-*
	// LoopModule is the kernel's loop.ko (uncompressed), "" if the package
	// has none. Debian builds the loop driver as a module, and the hung-task
	// test needs a loop device; /init loads it.
	LoopModule string
}

// Release is the kernel's release as uname -r gives it, from the image's
// file name.
func (k kernel) Release() string {
	return strings.TrimPrefix(filepath.Base(k.Vmlinuz), "vmlinuz-")
}

func (k kernel) String() string {
	return fmt.Sprintf("%s: %s %s (%s)", k.Series, k.Package, k.Version, k.Release())
}

// aptRunner runs apt-cache and apt-get, updating the package lists once
// when a look-up finds nothing (a fresh machine has no lists).
type aptRunner struct {
	ctx     context.Context
	updated bool
}

func (a *aptRunner) output(dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(a.ctx, name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (a *aptRunner) update() error {
	if a.updated {
		return errors.New("already updated once")
	}
	a.updated = true
	fmt.Println("apt-get update (the package lists are missing or stale)")
	_, err := a.output("", "apt-get", "update", "-q")
	return err
}

var dependsRE = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-\S+)`)

// parseDepends returns the first linux-image package on a Depends: line of
// apt-cache depends output.
func parseDepends(out string) string {
	if m := dependsRE.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

var versionRE = regexp.MustCompile(`(?m)^Version:\s*(\S+)`)

// imagePackage resolves a meta package to the versioned image package,
// preferring its -unsigned variant (the same kernel without the signed
// shim wrapping), and the version apt would fetch.
func (a *aptRunner) imagePackage(meta string) (pkg, version string, err error) {
	for {
		out, err := a.output("", "apt-cache", "depends", meta)
		if pkg = parseDepends(out); pkg != "" {
			break
		}
		if a.updated {
			if err == nil {
				err = fmt.Errorf("apt-cache depends %s names no linux-image package", meta)
			}
			return "", "", err
		}
		if uerr := a.update(); uerr != nil {
			return "", "", uerr
		}
	}
	if _, err := a.output("", "apt-cache", "show", pkg+"-unsigned"); err == nil {
		pkg += "-unsigned"
	}
	out, err := a.output("", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return "", "", err
	}
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("apt-cache show %s gives no Version", pkg)
	}
	return pkg, m[1], nil
}

// fetchKernel makes sure the cache holds the kernel of series: resolved
// with apt-cache, fetched with apt-get download and unpacked with dpkg -x,
// unless the cache already holds that exact version. Only boot/ and the
// loop driver's module are kept.
func fetchKernel(a *aptRunner, cache, series string) (kernel, error) {
	meta, ok := metaPackages[series]
	if !ok {
		known := make([]string, 0, len(metaPackages))
		for s := range metaPackages {
			known = append(known, s)
		}
		sort.Strings(known)
		return kernel{}, fmt.Errorf("unknown kernel series %q (known: %s)", series, strings.Join(known, ", "))
	}
	pkg, version, err := a.imagePackage(meta)
	if err != nil {
		return kernel{}, err
	}
	k := kernel{Series: series, Package: pkg, Version: version}
	dir := filepath.Join(cache, pkg+"_"+strings.NewReplacer(":", "_", "/", "_").Replace(version))
	if k.Vmlinuz = findVmlinuz(dir); k.Vmlinuz != "" {
		k.LoopModule = findLoopModule(dir)
		return k, nil
	}
	fmt.Printf("fetching %s %s\n", pkg, version)
	dl, err := os.MkdirTemp(cache, "download-")
	if err != nil {
		return k, err
	}
	defer os.RemoveAll(dl)
	args := []string{"download", "-q", pkg + "=" + version}
	if os.Geteuid() == 0 {
		// apt would otherwise drop to its _apt user, which may not write here.
		args = append([]string{"-o", "APT::Sandbox::User=root"}, args...)
	}
	if _, err := a.output(dl, "apt-get", args...); err != nil {
		return k, err
	}
	debs, _ := filepath.Glob(filepath.Join(dl, pkg+"_*.deb"))
	if len(debs) != 1 {
		return k, fmt.Errorf("apt-get download %s=%s left %d .deb files", pkg, version, len(debs))
	}
	unpacked := filepath.Join(dl, "root")
	if _, err := a.output("", "dpkg", "-x", debs[0], unpacked); err != nil {
		return k, err
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return k, err
	}
	if err := os.Rename(filepath.Join(unpacked, "boot"), filepath.Join(tmp, "boot")); err != nil {
		return k, fmt.Errorf("%s has no boot/: %w", debs[0], err)
	}
	if err := keepLoopModule(a, unpacked, tmp); err != nil {
		fmt.Printf("warning: %s: no loop module for the guest (hung-task tests will skip there): %v\n", pkg, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return k, err
	}
	if k.Vmlinuz = findVmlinuz(dir); k.Vmlinuz == "" {
		return k, fmt.Errorf("%s holds no boot/vmlinuz-*", debs[0])
	}
	k.LoopModule = findLoopModule(dir)
	return k, nil
}

// keepLoopModule moves the package's loop.ko (or loop.ko.xz, decompressed
// with xz: busybox's insmod reads only plain modules) to dir/modules/.
func keepLoopModule(a *aptRunner, unpacked, dir string) error {
	found, _ := filepath.Glob(filepath.Join(unpacked, "lib/modules/*/kernel/drivers/block/loop.ko*"))
	if len(found) != 1 {
		return fmt.Errorf("%d loop.ko files in the package", len(found))
	}
	if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, "modules", filepath.Base(found[0]))
	if err := os.Rename(found[0], dst); err != nil {
		return err
	}
	if strings.HasSuffix(dst, ".xz") {
		if _, err := a.output("", "xz", "-d", dst); err != nil {
			return err
		}
	}
	return nil
}

func findLoopModule(dir string) string {
	p := filepath.Join(dir, "modules", "loop.ko")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

func findVmlinuz(dir string) string {
	m, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(m) != 1 {
		return ""
	}
	return m[0]
}
