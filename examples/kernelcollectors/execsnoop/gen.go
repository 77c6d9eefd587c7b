package execsnoop

// bpf2go compiles execsnoop.bpf.c into bpf_bpfel.o and writes bpf_bpfel.go
// (loadBpf, and the Go type bpfExecEvent of struct exec_event). The
// headers come from the otelcol-kernel module: `go list -m` finds its
// directory, in the module cache or where a replace points, so the
// include path holds for every user of this module; it is made relative
// (realpath) because the path is recorded in the object's debug info, and
// an absolute one would make the committed .o depend on where the checkout
// is. sh runs the command because go generate does not expand $(...).
//go:generate sh -c "go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-16 -cflags '-O2 -g -Wall -Werror' -target bpfel -type exec_event bpf execsnoop.bpf.c -- -I\"$(realpath --relative-to=. \"$(go list -m -f '{{.Dir}}' github.com/otelcol-kernel/otelcol-kernel)\")/bpf/include\""
