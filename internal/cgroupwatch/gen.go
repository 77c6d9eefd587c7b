package cgroupwatch

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target bpfel -type cgroup_event -type cgroup_op bpf cgroupwatch.bpf.c -- -I../../bpf/include
