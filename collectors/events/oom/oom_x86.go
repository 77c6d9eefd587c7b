//go:build 386 || amd64

package oom

import (
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
)

// handle decodes one event of the generated type and saves it.
func (c *oomCollector) handle(raw []byte) {
	v, err := decodeVictim(raw)
	if err != nil {
		c.logger.Warn("malformed oom event", zap.Error(err), zap.Int("bytes", len(raw)))
		return
	}
	c.save(v)
}

// decodeVictim reads one ring-buffer record.
func decodeVictim(raw []byte) (victim, error) {
	var ev bpfOomEvent
	if err := bpf.Decode(raw, &ev, 0); err != nil {
		return victim{}, err
	}
	return victim{
		when: bpf.WallTime(ev.Victim.TimestampNs),
		pid:  ev.Victim.Pid, tgid: ev.Victim.Tgid, comm: bpf.CString(ev.Victim.Comm[:]),
		memcgID: ev.Victim.MemcgId, cgroupID: ev.Victim.CgroupId,
		known: ev.VictimKnown == 1, scopeKnown: ev.ScopeKnown == 1, oomMemcgID: ev.OomMemcgId,
		triggerPid: ev.Trigger.Pid, triggerTgid: ev.Trigger.Tgid, triggerComm: bpf.CString(ev.Trigger.Comm[:]),
		triggerMemcgID: ev.Trigger.MemcgId, triggerCgroupID: ev.Trigger.CgroupId,
	}, nil
}
