// Command udpflood sends a bounded number of 1-byte UDP datagrams to a
// port on loopback that nothing listens on, so that each becomes one
// packet drop (NO_SOCKET): the workload of bench/kernel-cost. It binds a
// port of its own first and closes it, so the port is closed, and stops
// after -n datagrams.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	n := flag.Int("n", 300000, "datagrams to send")
	flag.Parse()
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	start := time.Now()
	failed := 0
	for range *n {
		if _, err := c.WriteTo([]byte("x"), to); err != nil {
			failed++ // an ICMP error from an earlier datagram; the drop happened
		}
	}
	fmt.Printf("sent %d datagrams to 127.0.0.1:%d in %v (%d write errors)\n", *n, port, time.Since(start).Round(time.Millisecond), failed)
}
