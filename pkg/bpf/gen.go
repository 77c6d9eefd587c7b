package bpf

// The platform's self-test program. bpf2go needs clang-16 and libbpf's
// headers (Debian: clang-16, libbpf-dev); `make generate` runs it. The
// generated Go and .o files are committed so that `go build` needs neither.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target bpfel -type selftest_event selftest selftest.bpf.c -- -I../../bpf/include
