package kernelreceiver

import "github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"

// maybeRunTestHelper lets the test binary run as a helper process in a
// container's cgroups (TestMain calls it; see metadata.yaml).
func maybeRunTestHelper() { testenv.MaybeRunHelper() }
