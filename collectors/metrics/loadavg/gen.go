package loadavg

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target bpfel bpf loadavg.bpf.c -- -I../../../bpf/include
