package dropwatch

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target bpfel -type drop_event bpf dropwatch.bpf.c -- -I../../../bpf/include
