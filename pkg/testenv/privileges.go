package testenv

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// NobodyUID is the unprivileged user AsNobody runs commands as.
const NobodyUID = 65534

// WithCapabilities makes cmd run as root but with only the capabilities
// named (setpriv's names: "bpf", "perfmon", "sys_admin", "net_admin"; none:
// no capability at all), through setpriv, which clears the inheritable and
// ambient sets and limits the bounding set: root's capabilities after exec
// are the bounding set. Files stay as accessible as to root, so what fails
// is what the capabilities alone decide. Skips without setpriv.
func WithCapabilities(t testing.TB, cmd *exec.Cmd, caps ...string) {
	t.Helper()
	RequireRoot(t, "dropping capabilities from a child process")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed: cannot run a child with fewer capabilities")
	}
	// busybox's setpriv (the kernel-matrix guests) has no --bounding-set.
	if help, _ := exec.Command(setpriv, "--help").CombinedOutput(); !strings.Contains(string(help), "--bounding-set") {
		t.Skipf("%s has no --bounding-set (not util-linux's setpriv): cannot run a child with fewer capabilities", setpriv)
	}
	bounding := "-all"
	for _, c := range caps {
		bounding += ",+" + c
	}
	args := append([]string{setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=" + bounding, "--"}, cmd.Args...)
	args[len(args)-len(cmd.Args)] = cmd.Path
	cmd.Path, cmd.Args = setpriv, args
}

// AsNobody makes cmd run as the unprivileged user nobody, with no
// capabilities: how the receiver runs when started by an ordinary user.
// Whatever it must read or write must be accessible to that user.
func AsNobody(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	RequireRoot(t, "running a child process as another user")
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: NobodyUID, Gid: NobodyUID}
}

// CapabilityLine is the CapEff line of /proc/PID/status, for messages.
func CapabilityLine(status string) string {
	for _, line := range strings.Split(status, "\n") {
		if strings.HasPrefix(line, "CapEff:") {
			return line
		}
	}
	return ""
}
