package hungtask

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target bpfel -type hung_event bpf hungtask.bpf.c -- -I../../../bpf/include
