//go:build !linux

package kernelreceiver

// maybeRunTestHelper: helper processes exist only on Linux.
func maybeRunTestHelper() {}
