// Package semconvtest is an empty stand-in for contrib's pkg/semconvtest,
// which the Go module proxy reachable here does not serve at any version.
// Only k8sattributesprocessor's own tests import it; `go mod tidy` (run by
// ocb) needs the import to resolve, the distribution never compiles it.
// builder-config.yaml replaces the real module with this directory.
package semconvtest
