#!/usr/bin/env bash
# Runs the receiver's benchmarks the way BENCHMARKS.md reports them:
# 5 runs of each, 2 s per run, so benchstat can give a spread.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-5}
# The dropwatch benchmarks load BPF (root) and set kernel.bpf_stats_enabled
# for their duration (restored after).
go test -run '^$' -bench . -benchtime 2s -count "$count" -benchmem \
  ./pkg/storage/ ./pkg/metric/ ./pkg/container/ ./pkg/ksym/ ./pkg/tasks/ ./collectors/events/dropwatch/ | tee "${OUT:-/dev/stderr}" | grep -E '^(Benchmark|ok|FAIL)'
