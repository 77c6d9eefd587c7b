// Package testenv gives integration tests the kernel situations they need
// (root, a frozen filesystem with tasks stuck in D state, ...) and undoes
// every change it makes when the test ends, even on failure.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
)

// RequireRoot skips the test, naming the capability, unless it runs as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root (%s)", why)
	}
}

// RequireTool skips the test, naming the missing program, unless all of
// tools are on PATH.
func RequireTool(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs the %s program", tool)
		}
	}
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// cleanupRun runs a cleanup command, reporting (not fataling) a failure.
func cleanupRun(t testing.TB, name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Errorf("cleanup: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// FrozenFS is an ext4 filesystem on a loop device, mounted and frozen:
// every write to it blocks its writer in uninterruptible sleep (D state)
// until Thaw.
type FrozenFS struct {
	Dir    string
	t      testing.TB
	thawed bool
	procs  []*exec.Cmd
}

// NewFrozenFS makes a 32 MiB ext4 image in a temporary directory, attaches
// it to a loop device, mounts and freezes it. The test's cleanup thaws,
// reaps the writers, unmounts and detaches, in that order.
func NewFrozenFS(t testing.TB) *FrozenFS {
	t.Helper()
	RequireRoot(t, "loop devices, mount and fsfreeze")
	RequireTool(t, "losetup", "mkfs.ext4", "fsfreeze", "mount", "umount")
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("needs loop devices (/dev/loop-control; the loop driver)")
	}
	base := t.TempDir()
	img := filepath.Join(base, "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(32 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dev := Run(t, "losetup", "--find", "--show", img)
	t.Cleanup(func() { cleanupRun(t, "losetup", "-d", dev) })
	Run(t, "mkfs.ext4", "-q", dev)
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	Run(t, "mount", dev, mnt)
	t.Cleanup(func() { cleanupRun(t, "umount", mnt) })
	fs := &FrozenFS{Dir: mnt, t: t}
	Run(t, "fsfreeze", "-f", mnt)
	t.Cleanup(fs.Thaw) // runs before the umount above (cleanups are LIFO)
	return fs
}

// StartWriters starts n shell processes that each write a file on the
// frozen filesystem, and waits until all of them are in D state. It returns
// their pids.
func (fs *FrozenFS) StartWriters(n int) []int {
	fs.t.Helper()
	var pids []int
	for i := range n {
		cmd := exec.Command("sh", "-c", fmt.Sprintf("echo x > %s/f%d", fs.Dir, i))
		if err := cmd.Start(); err != nil {
			fs.t.Fatal(err)
		}
		fs.procs = append(fs.procs, cmd)
		pids = append(pids, cmd.Process.Pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for TaskState(pid) != "D" {
			if time.Now().After(deadline) {
				fs.t.Fatalf("writer %d never entered D state (state %q)", pid, TaskState(pid))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return pids
}

// Thaw unfreezes the filesystem and waits for the writers to finish.
func (fs *FrozenFS) Thaw() {
	if fs.thawed {
		return
	}
	fs.thawed = true
	cleanupRun(fs.t, "fsfreeze", "-u", fs.Dir)
	for _, p := range fs.procs {
		_ = p.Wait()
	}
}

// TaskState is the one-letter state of a task from /proc/<pid>/stat ("" if gone).
func TaskState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The comm field may hold spaces: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// Tracefs makes sure tracefs is mounted at /sys/kernel/tracing for the
// test, and unmounts it afterwards if a test mounted it and no test still
// uses it. Test packages run as parallel processes, so the mount is shared
// through two lock files: "guard", held exclusively while checking,
// mounting or unmounting, and "users", held shared by every process with a
// test using tracefs; the last process out, able to lock "users"
// exclusively, unmounts. A marker file says a test, not the host, mounted it.
func Tracefs(t testing.TB) {
	t.Helper()
	RequireRoot(t, "mounting tracefs")
	tracefsMu.Lock()
	defer tracefsMu.Unlock()
	if tracefsUsers == 0 {
		guard := lockFile(t, tracefsGuard, syscall.LOCK_EX)
		var st syscall.Statfs_t
		if syscall.Statfs(tracefsDir, &st) != nil || st.Type != tracefsMagic {
			Run(t, "mount", "-t", "tracefs", "tracefs", tracefsDir)
			if err := os.WriteFile(tracefsMarker, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		tracefsUsersLock = lockFile(t, tracefsUsersFile, syscall.LOCK_SH)
		guard.Close() // releases the lock
	}
	tracefsUsers++
	t.Cleanup(func() {
		tracefsMu.Lock()
		defer tracefsMu.Unlock()
		if tracefsUsers--; tracefsUsers > 0 {
			return
		}
		guard := lockFile(t, tracefsGuard, syscall.LOCK_EX)
		defer guard.Close()
		users := tracefsUsersLock
		tracefsUsersLock = nil
		defer users.Close()
		if syscall.Flock(int(users.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			return // another process still uses it
		}
		if _, err := os.Stat(tracefsMarker); err == nil {
			cleanupRun(t, "umount", tracefsDir)
			_ = os.Remove(tracefsMarker)
		}
	})
}

const (
	tracefsDir       = "/sys/kernel/tracing"
	tracefsGuard     = "/run/otelcol-kernel-tests-tracefs.guard"
	tracefsUsersFile = "/run/otelcol-kernel-tests-tracefs.users"
	tracefsMarker    = "/run/otelcol-kernel-tests-tracefs.mounted"
)

var (
	tracefsMu        sync.Mutex
	tracefsUsers     int      // tests of this process using tracefs now
	tracefsUsersLock *os.File // shared lock on tracefsUsersFile while tracefsUsers > 0
)

func lockFile(t testing.TB, path string, how int) *os.File {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return f
}

const tracefsMagic = 0x74726163

// Sysctl sets /proc/sys/<name> (slashes, e.g. "kernel/hung_task_timeout_secs")
// to value for the test and restores the old value when it ends.
func Sysctl(t testing.TB, name, value string) {
	t.Helper()
	RequireRoot(t, "setting sysctl "+name)
	path := filepath.Join("/proc/sys", name)
	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("needs sysctl %s", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		t.Fatalf("setting %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(path, old, 0o644); err != nil {
			t.Errorf("cleanup: restoring %s to %q: %v", name, strings.TrimSpace(string(old)), err)
		}
	})
}

// MemoryCgroup makes the memory cgroup /name with the given limit in the
// memory controller's hierarchy: the v1 memory hierarchy where there is one,
// else cgroup2 (with the controller enabled at its root for the test). It
// removes it when the test ends, after every process it held has gone, and
// returns its directory and whether it is v1.
func MemoryCgroup(t testing.TB, name string, limitBytes int64) (dir string, v1 bool) {
	t.Helper()
	RequireRoot(t, "creating memory cgroups")
	layout, _ := container.ReadLayout("/proc")
	limitFile := "memory.limit_in_bytes"
	var root string
	switch {
	case layout.Memory != nil:
		root = layout.Memory.Mount
	case layout.Unified != nil && slices.Contains(enableAtRoot(t, layout.Unified.Mount), "memory"):
		root, limitFile = layout.Unified.Mount, "memory.max"
	default:
		t.Skip("needs a memory cgroup controller (cgroup v1 memory, or memory on cgroup2)")
	}
	dir = filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, dir) })
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(fmt.Sprint(limitBytes)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, limitFile == "memory.limit_in_bytes"
}

// The test binary runs itself as a helper process (a memory hog, a UDP
// sender) in chosen cgroups: helperEnv says what to do, cgroupsEnv where.
const (
	helperEnv  = "KPS_TESTENV_HELPER"
	cgroupsEnv = "KPS_TESTENV_CGROUPS"
)

// MaybeRunHelper turns the test binary into the helper process RunMemoryHog
// or RunUDPSender started, and exits when it is done. Call it first in
// TestMain of a package that uses them.
func MaybeRunHelper() {
	what := os.Getenv(helperEnv)
	if what == "" {
		return
	}
	// Join every cgroup given (one per hierarchy) before doing anything.
	for _, dir := range filepath.SplitList(os.Getenv(cgroupsEnv)) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	kind, arg, _ := strings.Cut(what, ":")
	switch kind {
	case "hog":
		var hog [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b { // touch every page so that it is charged
				b[i] = 1
			}
			hog = append(hog, b)
		}
	case "udp":
		// Datagrams to 127.0.0.1:PORT, where nothing listens: dropped as NO_SOCKET.
		// An unconnected socket: the ICMP errors that come back would stop a
		// connected one.
		portText, count, _ := strings.Cut(arg, "x")
		port, _ := strconv.Atoi(portText)
		n, _ := strconv.Atoi(count)
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		for i := 0; i < n; i++ {
			if _, err := conn.WriteTo([]byte("otelcol-kernel test datagram"), to); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
		conn.Close()
		os.Exit(0)
	case "udpcomm":
		// As "udp", from one thread whose comm is the hex-encoded bytes
		// after the count: PR_SET_NAME names the calling thread only, so
		// the sends stay on it.
		spec, hexComm, _ := strings.Cut(arg, "/")
		portText, count, _ := strings.Cut(spec, "x")
		port, _ := strconv.Atoi(portText)
		n, _ := strconv.Atoi(count)
		comm, err := hex.DecodeString(hexComm)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		runtime.LockOSThread()
		name := append(comm, 0)
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "PR_SET_NAME:", err)
			os.Exit(2)
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		to := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
		for i := 0; i < n; i++ {
			// A raw sendto: the net package's poller could hand the write to another thread.
			if err := unix.Sendto(fd, []byte("otelcol-kernel test datagram"), 0, to); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
		fmt.Println(unix.Gettid())
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "unknown helper", what)
	os.Exit(2)
}

// RunUDPSenderNamed is RunUDPSender from a single thread whose command
// name (comm) is set to the given bytes, which need not be UTF-8: any
// unprivileged process can name its threads so. It returns the pid and the
// sending thread's id.
func RunUDPSenderNamed(t testing.TB, port, count int, comm []byte, cgroups ...string) (pid, tid int) {
	t.Helper()
	if len(comm) > 15 {
		t.Fatalf("comm %q is longer than the kernel's 15 bytes", comm)
	}
	cmd := helperCommand(fmt.Sprintf("udpcomm:%dx%d/%s", port, count, hex.EncodeToString(comm)), cgroups)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("udp sender: %v: %s", err, out)
	}
	tid, err = strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("udp sender printed %q", out)
	}
	return cmd.Process.Pid, tid
}

func helperCommand(what string, cgroups []string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+what, cgroupsEnv+"="+strings.Join(cgroups, string(filepath.ListSeparator)))
	return cmd
}

// RunMemoryHog runs this test binary as a memory hog in the cgroup
// directories given (one per hierarchy; its TestMain must call
// MaybeRunHelper), waits until it dies, checks that SIGKILL killed it, and
// returns its pid.
func RunMemoryHog(t testing.TB, cgroups ...string) int {
	t.Helper()
	cmd := helperCommand("hog", cgroups)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the memory hog was not killed: %v", err)
	}
	if ws := exit.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the memory hog ended with %v, not SIGKILL", ws)
	}
	return cmd.Process.Pid
}

// RunUDPSender runs this test binary in the cgroup directories given (its
// TestMain must call MaybeRunHelper) to send count datagrams to
// 127.0.0.1:port, and returns its pid once it has exited.
func RunUDPSender(t testing.TB, port, count int, cgroups ...string) int {
	t.Helper()
	cmd := helperCommand(fmt.Sprintf("udp:%dx%d", port, count), cgroups)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("udp sender: %v: %s", err, out)
	}
	return cmd.Process.Pid
}

// ContainerCgroups are the cgroups a runtime makes for one container, in
// each hierarchy a host has for it.
type ContainerCgroups struct {
	// Path is the cgroup path, the same in every hierarchy.
	Path string
	// Dirs are the directories, one per hierarchy: the v1 memory and cpu
	// hierarchies where they are mounted, and cgroup2.
	Dirs []string
	// Memory is the directory in the memory controller's hierarchy.
	Memory string
}

// NewContainerCgroups makes the cgroup rel (as a runtime names it, for
// instance "docker/<id>") in the v1 memory and cpu hierarchies and in
// cgroup2, whichever this host mounts, making parents as needed. At cleanup
// it removes what it made, deepest first, once the processes in it are gone.
//
// rel goes under a directory of the test's own ("/kps-<random>/docker/<id>"):
// test processes running at once would otherwise share, and race to make
// and remove, parents such as /docker. Container paths are read from the
// leaf up, so the prefix does not change what the path says.
func NewContainerCgroups(t testing.TB, rel string) *ContainerCgroups {
	t.Helper()
	RequireRoot(t, "creating cgroups")
	rel = "kps-" + RandomContainerID()[:12] + "/" + strings.Trim(rel, "/")
	layout, _ := container.ReadLayout("/proc")
	cg := &ContainerCgroups{Path: "/" + rel}
	seen := map[string]bool{}
	for _, h := range layout.Hierarchies() {
		if seen[h.Mount] { // memory and cpu mounted together on v1
			continue
		}
		seen[h.Mount] = true
		var controllers []string
		if h == layout.Unified {
			controllers = enableAtRoot(t, h.Mount)
		}
		dir := makeDirs(t, h.Mount, rel)
		passDown(h.Mount, rel, controllers)
		cg.Dirs = append(cg.Dirs, dir)
		if h == layout.MemoryHierarchy() {
			cg.Memory = dir
		}
	}
	if len(cg.Dirs) == 0 {
		t.Skip("needs a mounted cgroup hierarchy (cgroup2, or v1 memory or cpu)")
	}
	return cg
}

// enableAtRoot makes the memory and cpu controllers available below a
// cgroup2 root, where they are on cgroup2 at all (on a hybrid host they are
// bound to v1 and it does nothing), and returns those it can pass down.
// What it enables it disables again at cleanup; called before makeDirs,
// that cleanup runs after the test's cgroups are gone, as it must.
func enableAtRoot(t testing.TB, root string) []string {
	t.Helper()
	avail, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return nil
	}
	ctl := filepath.Join(root, "cgroup.subtree_control")
	enabled, _ := os.ReadFile(ctl)
	var want []string
	for _, c := range []string{"memory", "cpu"} {
		if !slices.Contains(strings.Fields(string(avail)), c) {
			continue
		}
		if !slices.Contains(strings.Fields(string(enabled)), c) {
			if err := os.WriteFile(ctl, []byte("+"+c), 0o644); err != nil {
				t.Logf("enabling %s in %s: %v", c, ctl, err)
				continue
			}
			t.Cleanup(func() {
				if err := os.WriteFile(ctl, []byte("-"+c), 0o644); err != nil {
					t.Errorf("cleanup: disabling %s in %s: %v", c, ctl, err)
				}
			})
		}
		want = append(want, c)
	}
	return want
}

// passDown enables controllers in the subtree_control of each directory
// between a cgroup2 root and the leaf rel (the test's own, made by
// makeDirs), so that the leaf has the controllers' files (memory.max).
func passDown(root, rel string, controllers []string) {
	dir := root
	parts := strings.Split(strings.Trim(rel, "/"), "/")
	for _, part := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, part)
		for _, c := range controllers {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0o644)
		}
	}
}

// makeDirs makes root/rel and any missing parent, removing those it made
// (deepest first) at cleanup.
func makeDirs(t testing.TB, root, rel string) string {
	t.Helper()
	dir := root
	for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
		dir = filepath.Join(dir, part)
		err := os.Mkdir(dir, 0o755)
		if os.IsExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		made := dir
		t.Cleanup(func() { removeCgroup(t, made) })
	}
	return dir
}

// removeCgroup removes a cgroup directory, waiting for a killed task to
// leave it (it does so a moment after it is reaped).
func removeCgroup(t testing.TB, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("cleanup: removing %s: %v", dir, err)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RandomContainerID returns a fresh 64-hex container id, as docker,
// containerd and cri-o make them.
func RandomContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomPodUID returns a fresh pod uid (a UUID).
func RandomPodUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
