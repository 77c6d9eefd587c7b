package tracing

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
)

// Conventions are the naming rules of docs/conventions.md in a form a test
// can check registrations against: every EventName with the collector that
// saves it, and every attribute name (of events, of their nested elements
// and of metric points) with its type. The document decides; the check
// keeps code and document in step, both ways.
type Conventions struct {
	// Events maps an EventName ("kernel.packet.drop") to its collector.
	Events map[string]string
	// Attributes maps an attribute name to its value type as
	// storage.Fields spells it ("string", "int", "array of map", …).
	Attributes map[string]string
	// Resource lists the attributes the receiver may put on a Resource.
	Resource map[string]bool
}

// ParseConventions reads the three tables of docs/conventions.md, found by
// their header rows: "| EventName | collector |…", "| attribute | type |…"
// and "| Resource attribute |…". A cell's value is its first `code span`.
func ParseConventions(r io.Reader) (*Conventions, error) {
	c := &Conventions{Events: map[string]string{}, Attributes: map[string]string{}, Resource: map[string]bool{}}
	table := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			table = ""
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if table == "" {
			switch {
			case len(cells) >= 2 && cells[0] == "EventName" && cells[1] == "collector":
				table = "events"
			case len(cells) >= 2 && cells[0] == "attribute" && cells[1] == "type":
				table = "attributes"
			case len(cells) >= 1 && cells[0] == "Resource attribute":
				table = "resource"
			default:
				table = "other"
			}
			continue
		}
		if strings.HasPrefix(cells[0], "---") || table == "other" {
			continue
		}
		name := codeSpan(cells[0])
		if name == "" {
			return nil, fmt.Errorf("conventions: row without a `name` in its first cell: %s", line)
		}
		switch table {
		case "events":
			c.Events[name] = codeSpan(cells[1])
		case "attributes":
			if _, dup := c.Attributes[name]; dup {
				return nil, fmt.Errorf("conventions: attribute %s listed twice", name)
			}
			c.Attributes[name] = strings.Trim(cells[1], "` ")
		case "resource":
			c.Resource[name] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(c.Events) == 0 || len(c.Attributes) == 0 || len(c.Resource) == 0 {
		return nil, fmt.Errorf("conventions: missing a table (events %d, attributes %d, resource %d rows)", len(c.Events), len(c.Attributes), len(c.Resource))
	}
	return c, nil
}

func codeSpan(cell string) string {
	_, rest, ok := strings.Cut(cell, "`")
	if !ok {
		return strings.TrimSpace(cell)
	}
	v, _, _ := strings.Cut(rest, "`")
	return v
}

var (
	// attrName is a namespaced snake_case name: at least one dot.
	attrName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)
	// elementKey is the key of a field inside an array element: namespaced,
	// or a bare snake_case word.
	elementKey = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
	// unitSuffix catches units (and Prometheus' _total) written into names:
	// the unit belongs in the metric's Unit, or in the attribute's documented
	// base unit.
	unitSuffix = regexp.MustCompile(`(^|[._])(secs?|seconds|ms|us|ns|msecs|usecs|nsecs|bytes|kb|kib|mb|mib|gb|pct|percent|total|in_bytes)$`)
	// metricUnit is the UCUM subset the receiver uses: 1, base units,
	// and {annotations}.
	metricUnit = regexp.MustCompile(`^(1|s|By|Hz|\{[a-z][a-z0-9_.]*\})(/s)?$`)
	// resourceNamespaces hold identity: their attributes go on the
	// Resource, never on a record (one Resource per container).
	resourceNamespaces = []string{"host.", "os.", "k8s.", "container.", "service."}
)

// Check returns every way the registrations (and the receiver's own
// metrics) depart from the conventions.
func (c *Conventions) Check(regs []*Registration) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, r := range regs {
		for _, e := range r.Events {
			name := storage.EventNamePrefix + e.Name
			switch owner, ok := c.Events[name]; {
			case !ok:
				add("%s: EventName %s is not in the conventions' event table", r.Name, name)
			case owner != r.Name:
				add("%s: EventName %s belongs to %s in the conventions", r.Name, name, owner)
			}
			for _, f := range storage.Fields(e.Data) {
				errs = append(errs, c.checkAttribute(r.Name+": event "+name, f)...)
			}
		}
		errs = append(errs, c.checkMetrics(r.Name, r.Metrics)...)
	}
	return append(errs, c.checkMetrics(SelfName, SelfMetrics)...)
}

func (c *Conventions) checkAttribute(where string, f storage.FieldDoc) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+": "+format, args...)) }
	key := f.Name
	if f.Nested {
		key = f.Key
		if !elementKey.MatchString(key) {
			add("element key %q of %s is not snake_case", key, f.Name)
		}
	} else {
		if !attrName.MatchString(key) {
			add("attribute %q is not a namespaced snake_case name (semantic convention or kernel.*)", key)
		}
		for _, ns := range resourceNamespaces {
			if strings.HasPrefix(key, ns) {
				add("attribute %q is in the Resource namespace %s*: identity goes on the Resource, context on the record", key, ns)
			}
		}
	}
	if unitSuffix.MatchString(key) {
		add("attribute %q carries a unit in its name", key)
	}
	// "int (string above 2^63-1)" is an int for the conventions.
	typ, _, _ := strings.Cut(f.Type, " (")
	switch want, ok := c.Attributes[key]; {
	case !ok:
		add("attribute %q is not in the conventions' attribute table", key)
	case want != typ:
		add("attribute %q is a %s here but a %s in the conventions", key, typ, want)
	}
	return errs
}

func (c *Conventions) checkMetrics(collector string, descs []metric.Desc) []error {
	var errs []error
	prefix := "kernel." + collector + "."
	for _, d := range descs {
		name := d.ExportedName(collector)
		add := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: metric %s: "+format, append([]any{collector, name}, args...)...))
		}
		if !strings.HasPrefix(name, prefix) || !attrName.MatchString(name) {
			add("the name must be %s<snake_case words joined by dots>", prefix)
		}
		if unitSuffix.MatchString(name) {
			add("a unit (or _total) in the name: it belongs in Unit")
		}
		if !metricUnit.MatchString(d.Unit) {
			add("unit %q is not one of 1, s, By, Hz or a {annotation} (optionally /s)", d.Unit)
		}
		for _, l := range d.Labels {
			switch want, ok := c.Attributes[l.Name]; {
			case !ok:
				add("label %q is not in the conventions' attribute table", l.Name)
			case want != "string":
				add("label %q is a string on metrics but a %s in the conventions: an attribute shared by events and metrics is a string on both", l.Name, want)
			}
			if unitSuffix.MatchString(l.Name) {
				add("label %q carries a unit in its name", l.Name)
			}
		}
	}
	return errs
}

// Unused returns the conventions' rows no registration uses, so the
// document lists only what exists. Element keys count as used by name.
func (c *Conventions) Unused(regs []*Registration, resource []string) []string {
	usedEvents, usedAttrs := map[string]bool{}, map[string]bool{}
	for _, r := range regs {
		for _, e := range r.Events {
			usedEvents[storage.EventNamePrefix+e.Name] = true
			for _, f := range storage.Fields(e.Data) {
				usedAttrs[f.Key] = true
				usedAttrs[f.Name] = true
			}
		}
		for _, d := range r.Metrics {
			for _, l := range d.Labels {
				usedAttrs[l.Name] = true
			}
		}
	}
	for _, d := range SelfMetrics {
		for _, l := range d.Labels {
			usedAttrs[l.Name] = true
		}
	}
	var out []string
	for name := range c.Events {
		if !usedEvents[name] {
			out = append(out, "event "+name)
		}
	}
	for name := range c.Attributes {
		if !usedAttrs[name] {
			out = append(out, "attribute "+name)
		}
	}
	for name := range c.Resource {
		if !slices.Contains(resource, name) {
			out = append(out, "resource attribute "+name)
		}
	}
	slices.Sort(out)
	return out
}
