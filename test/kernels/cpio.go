package main

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"
)

// File type bits of a newc header's mode field (from <sys/stat.h>).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// newcWriter writes a cpio archive in the "new ASCII" (newc) format, the
// one the kernel unpacks as an initramfs. Every header is "070701" and
// thirteen 8-digit hex fields; the name (with its NUL) and the data are
// each padded to a multiple of 4 bytes, counted from the archive's start.
// Parent directories are added on first use, so entries may come in any
// order. Timestamps and owners are zero: the same inputs give the same
// bytes.
type newcWriter struct {
	w    io.Writer
	off  int64
	ino  uint32
	dirs map[string]bool
	err  error
}

func newNewcWriter(w io.Writer) *newcWriter {
	return &newcWriter{w: w, ino: 1, dirs: map[string]bool{".": true, "": true}}
}

// clean turns "/usr/bin/x" into "usr/bin/x", the form cpio archives use.
func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (c *newcWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(b)
	c.off += int64(n)
	c.err = err
}

func (c *newcWriter) pad() {
	if r := c.off % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *newcWriter) header(name string, mode uint32, nlink uint32, size int64, rdevMajor, rdevMinor uint32) {
	if size > 0xffffffff {
		c.err = fmt.Errorf("cpio: %s is too large for newc (%d bytes)", name, size)
		return
	}
	ino := c.ino
	c.ino++
	if name == "TRAILER!!!" {
		ino = 0
	}
	fields := []uint32{ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, rdevMajor, rdevMinor, uint32(len(name) + 1), 0}
	var sb strings.Builder
	sb.WriteString("070701")
	for _, f := range fields {
		fmt.Fprintf(&sb, "%08x", f)
	}
	sb.WriteString(name)
	sb.WriteByte(0)
	c.write([]byte(sb.String()))
	c.pad()
}

// parents adds the directories above name that are not in the archive yet.
func (c *newcWriter) parents(name string) {
	dir := path.Dir(name)
	if c.dirs[dir] {
		return
	}
	c.parents(dir)
	c.dirs[dir] = true
	c.header(dir, modeDir|0o755, 2, 0, 0, 0)
}

// Dir adds a directory.
func (c *newcWriter) Dir(name string, perm uint32) {
	name = clean(name)
	if c.dirs[name] {
		return
	}
	c.parents(name)
	c.dirs[name] = true
	c.header(name, modeDir|perm, 2, 0, 0, 0)
}

// File adds a regular file of size bytes read from r.
func (c *newcWriter) File(name string, perm uint32, size int64, r io.Reader) {
	name = clean(name)
	c.parents(name)
	c.header(name, modeRegular|perm, 1, size, 0, 0)
	if c.err != nil {
		return
	}
	n, err := io.CopyN(c.w, r, size)
	c.off += n
	if err != nil {
		c.err = fmt.Errorf("cpio: %s: %w", name, err)
		return
	}
	c.pad()
}

// Bytes adds a regular file holding data.
func (c *newcWriter) Bytes(name string, perm uint32, data []byte) {
	c.File(name, perm, int64(len(data)), bytes.NewReader(data))
}

// Symlink adds a symbolic link to target.
func (c *newcWriter) Symlink(name, target string) {
	name = clean(name)
	c.parents(name)
	c.header(name, modeSymlink|0o777, 1, int64(len(target)), 0, 0)
	c.write([]byte(target))
	c.pad()
}

// CharDev adds a character device node.
func (c *newcWriter) CharDev(name string, perm, major, minor uint32) {
	name = clean(name)
	c.parents(name)
	c.header(name, modeCharDev|perm, 1, 0, major, minor)
}

// Close writes the trailer. It does not close the underlying writer.
func (c *newcWriter) Close() error {
	c.header("TRAILER!!!", 0, 1, 0, 0, 0)
	return c.err
}
