# otelcol-kernel: the kernel receiver and its ocb-built Collector distribution.
# `make help` lists the targets. Go 1.26 must be on PATH; the rest is fetched on demand.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT     := $(CURDIR)
TOOLS    := $(ROOT)/.tools
OCB      := $(TOOLS)/ocb
MDATAGEN := $(TOOLS)/mdatagen
DIST     := distribution/_build
# A module of its own: collectors written against the public packages, as a third party writes them.
EXAMPLES := examples/kernelcollectors
BINARY   := $(DIST)/otelcol-kernel
CONFIG   ?= distribution/config.yaml
# for `make validate` of the Elasticsearch config when the variable is not set
ELASTICSEARCH_ENDPOINT ?= http://127.0.0.1:9200

# Programs the tests and the collectors use, and the Debian package of each.
DEB_TOOLS := ip:iproute2 ethtool:ethtool mkfs.ext4:e2fsprogs losetup:util-linux setpriv:util-linux fsfreeze:util-linux mount:mount prometheus:prometheus

# What `make test-kernels` needs to boot other kernels under QEMU: program:package.
KERNEL_TEST_TOOLS := qemu-system-x86_64:qemu-system-x86 busybox:busybox-static cpio:cpio

.PHONY: help deps tools generate vmlinux docs build run validate test test-kernels fuzz lint clean

help:
	@echo 'make run       build the distribution and run it with $(CONFIG)'
	@echo 'make test      every test, with skip reasons and a closing "N passed, N failed, N skipped" line'
	@echo 'make test-kernels  the BPF tests on Debian 6.1 and 6.12 under QEMU and here; writes docs/kernel-matrix.md'
	@echo 'make fuzz      each Go fuzz target for FUZZTIME ($(FUZZTIME)) beyond its committed seeds (testdata/fuzz)'
	@echo 'make build     build $(BINARY) with ocb (first time: several minutes)'
	@echo 'make validate  otelcol-kernel validate on both distribution configs'
	@echo 'make race      go test -race on the receiver, storage, tracing and metric packages'
	@echo 'make lint      go vet, gofmt, and the non-Linux build of the receiver'
	@echo 'make generate  go generate (bpf2go, mdatagen for the receiver metadata), then docs; also in $(EXAMPLES)'
	@echo 'make docs      regenerate receiver/kernelreceiver/documentation.md'
	@echo 'make tools     build ocb and mdatagen into .tools/ (pinned in tools/go.mod)'
	@echo 'make deps      apt-get install the programs the tests need, if missing'
	@echo 'make clean     remove build output, tool binaries and collector data'

# Installs missing Debian packages when running as root with apt-get; otherwise only says what is missing
# (the tests that need a missing program skip, naming it).
deps:
	@missing=""; \
	for pair in $(DEB_TOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || PATH=$$PATH:/usr/sbin:/sbin command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	if [ -z "$${missing// /}" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	else \
	  echo "missing Debian packages (tests needing them will skip):$$missing"; \
	fi

$(OCB) $(MDATAGEN): tools/go.mod tools/go.sum
	@mkdir -p $(TOOLS)
	go -C tools build -o $(OCB) go.opentelemetry.io/collector/cmd/builder
	go -C tools build -o $(MDATAGEN) go.opentelemetry.io/collector/cmd/mdatagen
	@touch $(OCB) $(MDATAGEN)

tools: $(OCB) $(MDATAGEN)

# mdatagen deletes documentation.md when metadata.yaml declares no metrics or events (ours come from the
# collectors' registrations), so docs is regenerated last.
generate:
	go generate ./...
	cd $(EXAMPLES) && go generate ./... && go test -count=1 ./kernelreceiver -run '^TestDocumentationIsCurrent$$' -update
	$(MAKE) --no-print-directory docs

# bpf/include/vmlinux.h comes from the BTF of the kernel it is run on (CO-RE makes the programs portable);
# regenerate it only on purpose, not in CI.
vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/include/vmlinux.h

docs:
	go test -count=1 ./receiver/kernelreceiver -run '^(TestDocumentationIsCurrent|TestReadmeCollectorTable)$$' -update

# Two steps, because ocb's own module download trips over versions the build never uses: ocb generates the sources and go.mod, tidies and checks
# versions; then it compiles without touching go.mod again.
build: $(OCB)
	@mkdir -p distribution
	$(OCB) --config builder-config.yaml --skip-compilation
	$(OCB) --config builder-config.yaml --skip-generate --skip-get-modules
	@ls -l $(BINARY)

run: deps build
	$(BINARY) --config $(CONFIG)

validate: build
	$(BINARY) validate --config distribution/config.yaml
	ELASTICSEARCH_ENDPOINT=$(ELASTICSEARCH_ENDPOINT) $(BINARY) validate --config distribution/config-elasticsearch.yaml
	@echo 'both configs are valid'

# The distribution is built first so test/e2e and test/k8s find a fresh binary; if that build fails the tests
# still run and those tests report the failure. test/k8s is a module of its own (so that the receiver does not
# depend on client-go), and so is $(EXAMPLES) (collectors written outside this module, and the
# distribution ocb builds with them, on the Go build cache this build warmed): their tests run after the main
# module's, into the same summary, whose last line is "N passed, N failed, N skipped".
test: deps
	@mkdir -p $(TOOLS); echo "make build (log: .tools/build.log)"; \
	$(MAKE) --no-print-directory build > $(TOOLS)/build.log 2>&1 || \
	  { tail -n 30 $(TOOLS)/build.log; echo 'make build failed; the e2e test will report it'; }
	@go build -o $(TOOLS)/testsummary ./internal/cmd/testsummary
	@# Test packages run in parallel and several attach tracepoints, which need tracefs. Mounted once here
	@# (and unmounted after, if this target mounted it), no package mounts or unmounts it under another.
	@mounted=; if [ "$$(id -u)" = 0 ] && ! mountpoint -q /sys/kernel/tracing && ! mountpoint -q /sys/kernel/debug/tracing; then \
	  mount -t tracefs tracefs /sys/kernel/tracing && mounted=1; fi; \
	status=0; { rc=0; go test -json -count=1 -timeout 30m ./... 2>&1 || rc=$$?; \
	  (cd test/k8s && go test -json -count=1 -timeout 30m ./... 2>&1) || rc=$$?; \
	  (cd $(EXAMPLES) && go test -json -count=1 -timeout 30m ./... 2>&1) || rc=$$?; exit $$rc; } | $(TOOLS)/testsummary || status=$$?; \
	if [ -n "$$mounted" ]; then umount /sys/kernel/tracing; fi; exit $$status

# The race detector over the packages where events and metrics cross goroutines: the receiver (its pipelines,
# shutdown and telemetry), the event sink, the framework and the metric builder.
race:
	go test -race -count=1 ./receiver/kernelreceiver/ ./pkg/storage/ ./pkg/tracing/... ./pkg/metric/

# The kernel-facing test packages on Debian's 6.1 and 6.12 cloud kernels (which have the kprobes and fentry this
# machine lacks), each booted under QEMU with the test binary in its initramfs, and on this machine; writes
# docs/kernel-matrix.md from the attachments the loader reports. Kernels and logs go to .cache/kernels. Mounts
# nothing here. Options: go run ./test/kernels -h.
test-kernels:
	@missing=""; \
	for pair in $(KERNEL_TEST_TOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  if [ $$pkg = busybox-static ]; then \
	    dpkg-query -W -f='$${db:Status-Status}' busybox-static 2>/dev/null | grep -qx installed || missing="$$missing $$pkg"; \
	  else \
	    command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	  fi; \
	done; \
	if [ -n "$${missing// /}" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	  else \
	    echo "missing Debian packages:$$missing (install them as root)"; exit 1; \
	  fi; \
	fi
	go run ./test/kernels

# Every FuzzXxx of the main module, each for FUZZTIME after its seed corpus (which `make test` runs as
# ordinary tests). A failing input is written to the package's testdata/fuzz/<FuzzXxx>/: commit it once fixed.
FUZZTIME ?= 5s
fuzz:
	@n=0; for pkg in $$(go list ./...); do \
	  for fz in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    n=$$((n+1)); start=$$(date +%s); \
	    if ! out=$$(go test -run '^$$' -fuzz "^$$fz\$$" -fuzztime $(FUZZTIME) $$pkg 2>&1); then \
	      echo "$$out" | grep -v '^fuzz: elapsed' | tail -n 40; echo "FAIL $$pkg $$fz"; exit 1; \
	    fi; \
	    echo "ok   $$fz ($${pkg#github.com/otelcol-kernel/otelcol-kernel/}, $$(( $$(date +%s) - start ))s)"; \
	  done; \
	done; echo "fuzz: $$n targets ok"

lint:
	go vet ./...
	cd test/k8s && go vet ./...
	cd $(EXAMPLES) && go vet ./...
	@files=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/_build/*' -not -path '*/testdata/*' | xargs gofmt -l); \
	if [ -n "$$files" ]; then echo "gofmt needed on:"; echo "$$files"; exit 1; fi
	GOOS=darwin go vet ./receiver/...
	@echo 'lint ok'

clean:
	rm -rf $(DIST) $(EXAMPLES)/_build $(TOOLS) otelcol-kernel-data $(EXAMPLES)/otelcol-kernelcollectors-data
