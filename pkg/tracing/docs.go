package tracing

import (
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
)

// DocsOption adapts what WriteDocs writes around the reference to where
// the file lives, for a module other than this one documenting its own
// collectors.
type DocsOption func(*docsOptions)

type docsOptions struct {
	conventions string // link target of docs/conventions.md
	generatedBy string // the command that regenerates the file
}

// DocsConventionsLink is the link to otelcol-kernel's docs/conventions.md
// (a URL, or a path relative to the written file); the default,
// ../../docs/conventions.md, holds for receiver/kernelreceiver in this
// repository.
func DocsConventionsLink(target string) DocsOption {
	return func(o *docsOptions) { o.conventions = target }
}

// DocsGeneratedBy names the command that regenerates the file in its
// "do not edit" header (Markdown; default "`make docs`").
func DocsGeneratedBy(command string) DocsOption {
	return func(o *docsOptions) { o.generatedBy = command }
}

// WriteDocs writes the Markdown reference of the given collectors: every
// setting, event field and metric, straight from their declarations. The
// receiver's test compares it with the committed documentation.md, so the
// reference cannot drift from the code.
func WriteDocs(w io.Writer, regs []*Registration, opts ...DocsOption) error {
	o := docsOptions{conventions: "../../docs/conventions.md", generatedBy: "`make docs`"}
	for _, opt := range opts {
		opt(&o)
	}
	p := &docPrinter{w: w}
	p.line("<!-- Generated from the collectors' registrations by %s; do not edit. -->", o.generatedBy)
	p.line("# Kernel receiver reference")
	p.line("")
	p.line("Every collector of this build, with its settings, the events it saves (one LogRecord each, its EventName")
	p.line("saying what happened) and the metrics it reports. Names, types and units follow")
	p.line("[docs/conventions.md](%s). Every event also has the attribute", o.conventions)
	p.line("`" + storage.AttrTracerType + "` (`event` or `autotracing`).")
	p.line("")
	p.line("Events and metrics go into one Resource per container, and one for the host, with these attributes")
	p.line("(other host identity, such as `host.name`, is left to `resource_detection`):")
	p.line("")
	p.line("| Resource attribute | when | value |")
	p.line("| --- | --- | --- |")
	p.line("| `%s` | always | `linux` |", container.AttrOSType)
	p.line("| `%s` | always | the running kernel's release, as `uname -r` prints it |", container.AttrOSVersion)
	p.line("| `%s` | always | the runtime's bare container id, without a `containerd://` prefix |", container.AttrContainerID)
	p.line("| `%s` | when the cgroup path names the runtime | `docker`, `containerd`, `cri-o` or `podman` |", container.AttrContainerRuntime)
	p.line("| `%s` | for Kubernetes pods | the pod's uid, from its cgroup path |", container.AttrPodUID)
	p.line("")
	p.line("| collector | type | enabled by default | what it watches |")
	p.line("| --- | --- | --- | --- |")
	for _, r := range regs {
		p.line("| [%s](#%s) | %s | %s | %s |", r.Name, r.Name, r.Type, yesNo(!r.DisabledByDefault), r.Description)
	}
	p.line("| [receiver](#receiver) | self | always | the receiver's own health |")
	for _, r := range regs {
		p.line("")
		p.line("## %s", r.Name)
		p.line("")
		p.line("%s", r.Description)
		p.line("")
		p.line("Config section `%s` (type %s).", r.Name, r.Type)
		p.settings(r)
		for _, e := range r.Events {
			p.event(e)
		}
		p.metrics(r.Name, r.Metrics)
	}
	p.line("")
	p.line("## receiver")
	p.line("")
	p.line("The receiver's own metrics, reported with the kernel metrics on every collection.")
	p.metrics(SelfName, SelfMetrics)
	return p.err
}

type docPrinter struct {
	w   io.Writer
	err error
}

func (p *docPrinter) line(format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *docPrinter) settings(r *Registration) {
	p.line("")
	p.line("| setting | type | default | meaning |")
	p.line("| --- | --- | --- | --- |")
	p.line("| `enabled` | bool | %v | run this collector |", !r.DisabledByDefault)
	if r.DefaultConfig == nil {
		return
	}
	v := reflect.ValueOf(r.DefaultConfig()).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if key == "" || key == "-" {
			continue
		}
		p.line("| `%s` | %s | %s | %s |", key, f.Type, defaultValue(v.Field(i)), f.Tag.Get("doc"))
	}
}

func defaultValue(v reflect.Value) string {
	if v.IsZero() {
		if v.Kind() == reflect.Slice || v.Kind() == reflect.Map {
			return "empty"
		}
		if v.Kind() == reflect.String {
			return `""`
		}
	}
	return fmt.Sprintf("`%v`", v.Interface())
}

func (p *docPrinter) event(e EventDoc) {
	p.line("")
	p.line("### Event `%s%s`", storage.EventNamePrefix, e.Name)
	p.line("")
	p.line("%s", e.Description)
	p.line("")
	if e.SeverityNote != "" {
		p.line("Severity: %s.", strings.TrimSuffix(e.SeverityNote, "."))
	} else {
		p.line("Severity: %s.", strings.ToUpper(e.Severity.String()))
	}
	if e.Body != "" {
		p.line("Body: %s.", strings.TrimSuffix(e.Body, "."))
	} else {
		p.line("Body: empty.")
	}
	p.line("")
	p.line("| attribute | type | meaning |")
	p.line("| --- | --- | --- |")
	for _, f := range storage.Fields(e.Data) {
		p.line("| `%s` | %s | %s |", f.Name, f.Type, f.Doc)
	}
}

func (p *docPrinter) metrics(collector string, descs []metric.Desc) {
	if len(descs) == 0 {
		return
	}
	p.line("")
	p.line("### Metrics")
	p.line("")
	p.line("| metric | type | unit | attributes | per container | meaning |")
	p.line("| --- | --- | --- | --- | --- | --- |")
	for _, d := range descs {
		var labels []string
		for _, l := range d.Labels {
			labels = append(labels, fmt.Sprintf("`%s`: %s", l.Name, l.Description))
		}
		p.line("| `%s` | %s | `%s` | %s | %s | %s |", d.ExportedName(collector), d.Kind, d.Unit,
			strings.Join(labels, "<br>"), yesNo(d.PerContainer), d.Description)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// WriteCollectorTable writes the Markdown table of collectors that README
// shows between its "collectors" markers, linking each to its section of
// docPath (the generated reference). A test compares README with it.
func WriteCollectorTable(w io.Writer, regs []*Registration, docPath string) error {
	p := &docPrinter{w: w}
	p.line("| collector | type | events | metrics | what it watches |")
	p.line("| --- | --- | --- | --- | --- |")
	for _, r := range regs {
		var events []string
		for _, e := range r.Events {
			events = append(events, "`"+storage.EventNamePrefix+e.Name+"`")
		}
		if len(events) == 0 {
			events = []string{"–"}
		}
		p.line("| [%s](%s#%s) | %s | %s | %d | %s |", r.Name, docPath, r.Name, r.Type, strings.Join(events, ", "), len(r.Metrics), r.Description)
	}
	return p.err
}
