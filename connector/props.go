package connector

// Props are decoded props: every value has the Go type of its field's kind
// (string, int64, float64, bool, []string, map[string]any). The getters
// return the zero value for an absent prop.
type Props map[string]any

// String returns the string or URL prop name.
func (p Props) String(name string) string { s, _ := p[name].(string); return s }

// Int returns the int prop name.
func (p Props) Int(name string) int64 { n, _ := p[name].(int64); return n }

// Float returns the float prop name.
func (p Props) Float(name string) float64 { f, _ := p[name].(float64); return f }

// Bool returns the bool prop name.
func (p Props) Bool(name string) bool { b, _ := p[name].(bool); return b }

// Strings returns the string list prop name.
func (p Props) Strings(name string) []string { l, _ := p[name].([]string); return l }

// Map returns the map prop name.
func (p Props) Map(name string) map[string]any { m, _ := p[name].(map[string]any); return m }

// Has reports whether the prop name is set.
func (p Props) Has(name string) bool { _, ok := p[name]; return ok }
