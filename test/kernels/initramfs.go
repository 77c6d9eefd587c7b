package main

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// guestTools are the host programs the tests call by name (testenv's
// frozen filesystem, network namespaces). They are copied into the guest
// with their shared libraries, ahead of busybox on PATH, because busybox's
// applets of the same names lack options the tests use.
var guestTools = []string{"ip", "losetup", "mount", "umount", "fsfreeze", "mkfs.ext4"}

// resultMarker starts the line /init prints after the test binary exits;
// the host reads the guest's result from it (QEMU's exit code says nothing
// about the guest).
const resultMarker = "OTELCOL-KERNEL-RESULT"

// unameMarker starts the line with the guest's uname -r.
const unameMarker = "OTELCOL-KERNEL-UNAME"

// initScript is the guest's /init. devtmpfs comes first: until /dev/console
// exists init's output goes nowhere. The cgroup layout is hybrid like the
// machines this project runs on (v1 memory and cpu, cgroup2 beside them at
// unified/) where the kernel has cgroup v1 memory (6.1), and cgroup2 only,
// as modern distributions boot, where it has not (6.12): so both layouts
// are tested for real. The v1 cpu hierarchy is named as systemd names it
// (cpu,cpuacct, with cpu and cpuacct as symlinks).
// /test/run.conf, in the per-boot archive, names the test binary.
const initScript = `#!/bin/busybox sh
# /init of a kernel-matrix guest, written by test/kernels.
bb=/bin/busybox
$bb mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/console 2>&1
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
m() { $bb mount "$@" || echo "init: mount $* failed"; }
m -t proc proc /proc
m -t sysfs sysfs /sys
m -t tracefs tracefs /sys/kernel/tracing
m -t debugfs debugfs /sys/kernel/debug
m -t bpf bpf /sys/fs/bpf
m -t tmpfs tmpfs /tmp
m -t tmpfs tmpfs /run
$bb mkdir -p /run/netns
$bb mkdir -p /run/v1probe
if $bb mount -t cgroup -o memory cgroup /run/v1probe 2>/dev/null; then
	$bb umount /run/v1probe
	m -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup
	$bb mkdir -p /sys/fs/cgroup/memory /sys/fs/cgroup/cpu,cpuacct /sys/fs/cgroup/unified
	m -t cgroup -o memory cgroup /sys/fs/cgroup/memory
	m -t cgroup -o cpu,cpuacct cgroup /sys/fs/cgroup/cpu,cpuacct
	$bb ln -s cpu,cpuacct /sys/fs/cgroup/cpu
	$bb ln -s cpu,cpuacct /sys/fs/cgroup/cpuacct
	m -t cgroup2 cgroup2 /sys/fs/cgroup/unified
	echo "init: cgroup layout: hybrid (v1 memory and cpu, cgroup2 at /sys/fs/cgroup/unified)"
else
	# No v1 memory controller (CONFIG_MEMCG_V1 off, as on 6.12): boot the way
	# such a kernel is run, every controller on cgroup2 at /sys/fs/cgroup.
	m -t cgroup2 cgroup2 /sys/fs/cgroup
	echo "init: cgroup layout: cgroup2 only (this kernel has no cgroup v1 memory controller)"
fi
$bb rmdir /run/v1probe
# Debian builds the loop driver as a module; the per-boot archive carries it.
if [ -f /modules/loop.ko ]; then $bb insmod /modules/loop.ko || echo "init: insmod loop.ko failed"; fi
ip link set lo up || echo "init: ip link set lo up failed"
echo "` + unameMarker + ` $($bb uname -r)"
. /test/run.conf
cd /test
if [ -n "$RUN" ]; then set -- -test.run "$RUN"; else set --; fi
OTELCOL_KERNEL_MATRIX=1 ./"$TEST" -test.v -test.count=1 -test.timeout "$TIMEOUT" "$@"
rc=$?
echo "` + resultMarker + ` rc=$rc"
$bb sync
$bb poweroff -f
`

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// runConf is /test/run.conf: which binary /init runs and how.
func runConf(binary string, timeout time.Duration, run string) string {
	return fmt.Sprintf("TEST=%s\nTIMEOUT=%s\nRUN=%s\n", shellQuote(binary), shellQuote(timeout.String()), shellQuote(run))
}

// isStatic reports whether the ELF file at path has no program interpreter.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

var lddLibRE = regexp.MustCompile(`^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-fA-F]+\)\s*$`)
var lddMissingRE = regexp.MustCompile(`^\s*(\S+)\s+=>\s+not found`)

// parseLdd returns the absolute paths of the libraries (and the dynamic
// loader) in ldd's output, and the names of libraries ldd could not find.
// The vDSO has no file and is left out.
func parseLdd(out string) (libs, missing []string) {
	for _, line := range strings.Split(out, "\n") {
		if m := lddMissingRE.FindStringSubmatch(line); m != nil {
			missing = append(missing, m[1])
		} else if m := lddLibRE.FindStringSubmatch(line); m != nil {
			libs = append(libs, m[1])
		}
	}
	return libs, missing
}

// findTool looks for a program on PATH and in the sbin directories, which
// a non-root PATH may lack.
func findTool(name string) (string, error) {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	dirs = append(dirs, "/usr/sbin", "/sbin", "/usr/bin", "/bin")
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// addHostFile copies a host file (following symlinks) into the archive at
// guestPath.
func addHostFile(w *newcWriter, guestPath, hostPath string) error {
	f, err := os.Open(hostPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	w.File(guestPath, uint32(st.Mode().Perm()), st.Size(), f)
	return nil
}

// buildBaseInitramfs writes the archive every boot shares: busybox and its
// applets, the host tools with their libraries, /init. Missing host tools
// are returned as warnings: the tests that need them skip, naming them.
func buildBaseInitramfs(out string) (warnings []string, err error) {
	busybox, err := findTool("busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox not found: install Debian's busybox-static")
	}
	if static, err := isStatic(busybox); err != nil || !static {
		return nil, fmt.Errorf("%s is not a static binary (install Debian's busybox-static): %v", busybox, err)
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}

	f, err := os.Create(out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := newNewcWriter(bw)

	for _, d := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin", "/etc", "/root", "/proc", "/sys", "/dev",
		"/run", "/var", "/test", "/mnt"} {
		w.Dir(d, 0o755)
	}
	w.Dir("/tmp", 0o1777)
	w.Symlink("/var/run", "../run") // /var/run/netns is /run/netns, made by /init on the tmpfs
	w.CharDev("/dev/console", 0o600, 5, 1)
	w.CharDev("/dev/null", 0o666, 1, 3)
	w.Bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	w.Bytes("/etc/group", 0o644, []byte("root:x:0:\n"))
	w.Symlink("/etc/mtab", "/proc/self/mounts")
	if _, err := os.Stat("/etc/mke2fs.conf"); err == nil {
		if err := addHostFile(w, "/etc/mke2fs.conf", "/etc/mke2fs.conf"); err != nil {
			return nil, err
		}
	}

	if err := addHostFile(w, "/bin/busybox", busybox); err != nil {
		return nil, err
	}
	// Busybox's shell runs its own applets before anything on PATH, so a
	// test's `sh -c "mount …"` would get busybox's mount. Where the host has
	// dash, /bin/sh is dash, which follows PATH; /init itself is a busybox
	// script.
	dash, dashErr := findTool("dash")
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") || (applet == "sh" && dashErr == nil) {
			continue
		}
		w.Symlink("/bin/"+applet, "busybox")
	}
	w.Bytes("/init", 0o755, []byte(initScript))

	added := map[string]bool{}
	copyTool := func(guestPath, host string) {
		if err := addHostFile(w, guestPath, host); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: %v", host, err))
			return
		}
		if static, _ := isStatic(host); static {
			return
		}
		out, err := exec.Command("ldd", host).Output()
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("ldd %s: %v: %s may not run in the guest", host, err, guestPath))
			return
		}
		libs, missing := parseLdd(string(out))
		for _, m := range missing {
			warnings = append(warnings, fmt.Sprintf("ldd %s: %s not found", host, m))
		}
		for _, lib := range libs {
			if added[lib] {
				continue
			}
			added[lib] = true
			if err := addHostFile(w, lib, lib); err != nil {
				warnings = append(warnings, fmt.Sprintf("%s: %v", lib, err))
			}
		}
	}
	if dashErr == nil {
		copyTool("/bin/sh", dash)
	} else {
		warnings = append(warnings, "dash not found on this machine: /bin/sh in the guests is busybox's, which prefers its own applets to PATH")
	}
	for _, tool := range guestTools {
		host, err := findTool(tool)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("%s not found on this machine: the guest tests that need it will skip", tool))
			continue
		}
		dir := "/usr/bin"
		if strings.HasSuffix(filepath.Dir(host), "sbin") {
			dir = "/usr/sbin"
		}
		copyTool(dir+"/"+tool, host)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return warnings, f.Close()
}

// writeBootInitramfs writes base followed by a second archive holding the
// test binary at /test/<name>, /test/run.conf and, if loopModule is not
// empty, the kernel's loop driver at /modules/loop.ko; the kernel unpacks
// concatenated archives one after the other.
func writeBootInitramfs(out, base, testBinary, conf, loopModule string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := os.Open(base)
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := io.Copy(f, b); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w := newNewcWriter(bw)
	w.Dir("/test", 0o755)
	w.Bytes("/test/run.conf", 0o644, []byte(conf))
	if err := addHostFile(w, "/test/"+filepath.Base(testBinary), testBinary); err != nil {
		return err
	}
	if loopModule != "" {
		w.Dir("/modules", 0o755)
		if err := addHostFile(w, "/modules/loop.ko", loopModule); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}
