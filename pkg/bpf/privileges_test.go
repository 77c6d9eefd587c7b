package bpf

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// privilegeProbeEnv makes the test binary load the selftest program once,
// print the outcome and exit (see TestMain).
const privilegeProbeEnv = "KPS_BPF_PRIVILEGE_PROBE"

// runPrivilegeProbe is the child: it reports what Load said.
func runPrivilegeProbe() {
	status, _ := os.ReadFile("/proc/self/status")
	fmt.Println(testenv.CapabilityLine(string(status)))
	cs, err := loadSelftest()
	if err == nil {
		var obj *Object
		obj, err = Load(Spec{
			Collection: cs,
			Constants:  map[string]any{"target_tgid": uint32(os.Getpid()), "rate_limit_per_sec": uint32(0)},
			Hooks:      []Hook{getppidHook},
		}, Options{})
		if err == nil {
			obj.Close()
		}
	}
	fmt.Printf("not_permitted=%t not_supported=%t\n", errors.Is(err, tracing.ErrNotPermitted), errors.Is(err, tracing.ErrNotSupported))
	fmt.Printf("error=%v\n", err)
	os.Exit(0)
}

// Loading without the capabilities says which are missing, and says it is
// a lasting condition (ErrNotPermitted, an ErrNotSupported), rather than
// passing on the kernel's EPERM, which cilium/ebpf presents as a MEMLOCK
// limit and the Manager would retry for ever.
func TestMissingCapabilitiesAreNamed(t *testing.T) {
	testenv.Tracefs(t) // mounted here: the child may not mount it
	for _, tc := range []struct {
		caps []string
		want string // in the error; "" for success
	}{
		{nil, "lacks CAP_BPF and CAP_PERFMON"},
		{[]string{"bpf"}, "lacks CAP_PERFMON"},
		{[]string{"perfmon"}, "lacks CAP_BPF"},
		{[]string{"bpf", "perfmon"}, ""},
		{[]string{"sys_admin"}, ""},
	} {
		t.Run(strings.Join(append([]string{"caps"}, tc.caps...), "_"), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), privilegeProbeEnv+"=1")
			testenv.WithCapabilities(t, cmd, tc.caps...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("probe: %v\n%s", err, out)
			}
			text := string(out)
			if tc.want == "" {
				assert.Contains(t, text, "error=<nil>", "loads with these capabilities")
				return
			}
			assert.Contains(t, text, "not_permitted=true not_supported=true")
			assert.Contains(t, text, tc.want)
			assert.NotContains(t, text, "MEMLOCK")
		})
	}
}
