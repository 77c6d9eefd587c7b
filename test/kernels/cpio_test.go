package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// newcEntry is one entry read back by readNewc, an independent reader
// written from the format's description.
type newcEntry struct {
	Name         string
	Mode         uint32
	Nlink        uint32
	RdevMajor    uint32
	RdevMinor    uint32
	Data         string
	HeaderOffset int
}

// readNewc reads every archive in b (the kernel's initramfs may be several
// archives one after the other), checking magic, field syntax and the
// 4-byte alignment of names and data.
func readNewc(t *testing.T, b []byte) []newcEntry {
	t.Helper()
	var out []newcEntry
	off := 0
	for off < len(b) {
		if off%4 != 0 {
			t.Fatalf("header at %d is not 4-byte aligned", off)
		}
		if len(b)-off < 110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d: %q", off, b[off:min(off+6, len(b))])
		}
		field := func(i int) uint32 {
			s := string(b[off+6+8*i : off+6+8*i+8])
			v, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %q", i, off, s)
			}
			return uint32(v)
		}
		mode, nlink, size, rmaj, rmin, namesize := field(1), field(4), int(field(6)), field(9), field(10), int(field(11))
		nameStart := off + 110
		name := string(b[nameStart : nameStart+namesize])
		if !strings.HasSuffix(name, "\x00") {
			t.Fatalf("name at %d does not end in NUL: %q", nameStart, name)
		}
		name = strings.TrimSuffix(name, "\x00")
		dataStart := (nameStart + namesize + 3) &^ 3
		for _, pad := range b[nameStart+namesize : dataStart] {
			if pad != 0 {
				t.Fatalf("non-zero padding after name %q", name)
			}
		}
		data := string(b[dataStart : dataStart+size])
		e := newcEntry{Name: name, Mode: mode, Nlink: nlink, RdevMajor: rmaj, RdevMinor: rmin, Data: data, HeaderOffset: off}
		off = (dataStart + size + 3) &^ 3
		if name == "TRAILER!!!" {
			continue
		}
		out = append(out, e)
	}
	if off != len(b) {
		t.Fatalf("archive ends at %d of %d bytes", off, len(b))
	}
	return out
}

func byName(entries []newcEntry) map[string]newcEntry {
	m := map[string]newcEntry{}
	for _, e := range entries {
		m[e.Name] = e
	}
	return m
}

func TestNewcEntries(t *testing.T) {
	var buf bytes.Buffer
	w := newNewcWriter(&buf)
	w.Bytes("/usr/sbin/ip", 0o755, []byte("odd-length data"))
	w.Dir("/tmp", 0o1777)
	w.Symlink("/bin/sh", "busybox")
	w.CharDev("/dev/console", 0o600, 5, 1)
	w.Bytes("/init", 0o755, []byte("#!/bin/sh\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	entries := readNewc(t, buf.Bytes())

	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	// Parents come before their children, added once.
	want := "usr,usr/sbin,usr/sbin/ip,tmp,bin,bin/sh,dev,dev/console,init"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("entries %s, want %s", got, want)
	}
	m := byName(entries)
	for name, mode := range map[string]uint32{
		"usr":         modeDir | 0o755,
		"usr/sbin/ip": modeRegular | 0o755,
		"tmp":         modeDir | 0o1777,
		"bin/sh":      modeSymlink | 0o777,
		"dev/console": modeCharDev | 0o600,
	} {
		if m[name].Mode != mode {
			t.Errorf("%s: mode %o, want %o", name, m[name].Mode, mode)
		}
	}
	if m["usr/sbin/ip"].Data != "odd-length data" || m["init"].Data != "#!/bin/sh\n" {
		t.Errorf("file data: %q, %q", m["usr/sbin/ip"].Data, m["init"].Data)
	}
	if m["bin/sh"].Data != "busybox" {
		t.Errorf("symlink target %q", m["bin/sh"].Data)
	}
	if c := m["dev/console"]; c.RdevMajor != 5 || c.RdevMinor != 1 {
		t.Errorf("console is %d:%d, want 5:1", c.RdevMajor, c.RdevMinor)
	}
	// Same input, same bytes: no timestamps or owners of this machine.
	var again bytes.Buffer
	w2 := newNewcWriter(&again)
	w2.Bytes("/usr/sbin/ip", 0o755, []byte("odd-length data"))
	w2.Dir("/tmp", 0o1777)
	w2.Symlink("/bin/sh", "busybox")
	w2.CharDev("/dev/console", 0o600, 5, 1)
	w2.Bytes("/init", 0o755, []byte("#!/bin/sh\n"))
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("the same entries gave different archives")
	}
}

// The per-boot archive is the base archive with a second one appended.
func TestBootInitramfsAppendsAnArchive(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.cpio")
	var buf bytes.Buffer
	w := newNewcWriter(&buf)
	w.Bytes("/init", 0o755, []byte(initScript))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "oom.test")
	if err := os.WriteFile(bin, []byte("\x7fELF not really"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "boot.cpio")
	if err := writeBootInitramfs(out, base, bin, "TEST='oom.test'\n", ""); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, buf.Bytes()) {
		t.Fatal("the boot archive does not start with the base archive")
	}
	m := byName(readNewc(t, b))
	if m["test/oom.test"].Data != "\x7fELF not really" || m["test/oom.test"].Mode != modeRegular|0o755 {
		t.Errorf("test binary entry: %+v", m["test/oom.test"])
	}
	if m["test/run.conf"].Data != "TEST='oom.test'\n" {
		t.Errorf("run.conf: %q", m["test/run.conf"].Data)
	}
	if m["init"].Data != initScript {
		t.Error("the base archive's /init is not in the boot archive")
	}
}

// GNU cpio, where installed, unpacks what the writer wrote.
func TestNewcUnpacksWithCpio(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("needs the cpio program (Debian's cpio) to cross-check")
	}
	var buf bytes.Buffer
	w := newNewcWriter(&buf)
	w.Bytes("/usr/bin/tool", 0o755, []byte("hello\n"))
	w.Symlink("/bin/sh", "busybox")
	w.Dir("/var/run/netns", 0o755)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-i", "-d", "--quiet", "--no-absolute-filenames")
	cmd.Dir = dir
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "usr/bin/tool")); err != nil || string(b) != "hello\n" {
		t.Errorf("usr/bin/tool: %q, %v", b, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "usr/bin/tool")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("usr/bin/tool mode: %v, %v", st, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh: %q, %v", target, err)
	}
	if st, err := os.Stat(filepath.Join(dir, "var/run/netns")); err != nil || !st.IsDir() {
		t.Errorf("var/run/netns: %v", err)
	}
}
