package metric

import (
	"fmt"
	"regexp"
)

// Desc declares one metric a collector reports. Declaring is what gives the
// exported metric its unit and keeps the generated documentation complete:
// a collector's tests check that everything Update returns was declared.
type Desc struct {
	// Name is the short name Update uses in Data.Name.
	Name string
	// FullName overrides the exported name; empty means kernel.<collector>.<Name>.
	// Set it only where an OpenTelemetry semantic convention name fits.
	FullName string
	Kind     Kind
	// Unit is a UCUM unit: "1", "s", "By", "{thread}", "{event}".
	Unit        string
	Description string
	// Labels lists every label key the points may carry, with its meaning.
	Labels []Label
	// PerContainer says points may carry a ContainerID.
	PerContainer bool
}

// Label documents one label key.
type Label struct {
	Name        string
	Description string
}

var shortName = regexp.MustCompile(`^[a-z][a-z0-9_.]*$`)

// Validate reports a malformed declaration. It runs at registration, so a
// bad Desc is a programming error caught by any test that imports the
// collector.
func (d Desc) Validate() error {
	if !shortName.MatchString(d.Name) {
		return fmt.Errorf("metric name %q must match %s", d.Name, shortName)
	}
	if d.Unit == "" {
		return fmt.Errorf("metric %q has no unit (use \"1\" for a plain number)", d.Name)
	}
	if d.Description == "" {
		return fmt.Errorf("metric %q has no description", d.Name)
	}
	seen := map[string]bool{}
	for _, l := range d.Labels {
		if l.Name == "" || l.Description == "" {
			return fmt.Errorf("metric %q: every label needs a name and a description", d.Name)
		}
		if seen[l.Name] {
			return fmt.Errorf("metric %q: label %q declared twice", d.Name, l.Name)
		}
		seen[l.Name] = true
	}
	return nil
}

// ExportedName is the name the metric has in pdata.
func (d Desc) ExportedName(collector string) string {
	if d.FullName != "" {
		return d.FullName
	}
	return "kernel." + collector + "." + d.Name
}

// CheckDeclared returns an error for each point in data that does not match
// a declaration: unknown name, wrong kind, an undeclared label, or a
// container point for a host-only metric. Collector tests call it (through
// tracingtest) so that documentation cannot drift from behaviour.
func CheckDeclared(descs []Desc, data []*Data) []error {
	byName := make(map[string]Desc, len(descs))
	for _, d := range descs {
		byName[d.Name] = d
	}
	var errs []error
	for _, p := range data {
		d, ok := byName[p.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("metric %q is not declared", p.Name))
			continue
		}
		if d.Kind != p.Kind {
			errs = append(errs, fmt.Errorf("metric %q is declared a %s but reported as a %s", p.Name, d.Kind, p.Kind))
		}
		if p.ContainerID != "" && !d.PerContainer {
			errs = append(errs, fmt.Errorf("metric %q is declared host-only but has a container point", p.Name))
		}
		for k := range p.Labels {
			if !hasLabel(d.Labels, k) {
				errs = append(errs, fmt.Errorf("metric %q: label %q is not declared", p.Name, k))
			}
		}
	}
	return errs
}

func hasLabel(labels []Label, name string) bool {
	for _, l := range labels {
		if l.Name == name {
			return true
		}
	}
	return false
}
