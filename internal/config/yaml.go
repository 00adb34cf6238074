package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/settings"
)

// maxNodes bounds the work of walking one file, aliases expanded, so that a
// file of nested merge keys (a "billion laughs") fails instead of hanging.
const maxNodes = 1_000_000

// maxDepth bounds nesting, which merge keys through self-referencing
// anchors could otherwise make unbounded.
const maxDepth = 64

// fileDecoder walks a parsed YAML document into a Config by reflection over
// the yaml tags of Config and apps.App. It does the walk itself, rather than
// yaml.Node.Decode, to reject unknown keys with their line, to read a bare
// integer duration as seconds, to start each app from apps.Defaults, to
// record where each value came from, and to report every problem at once.
type fileDecoder struct {
	file    string
	origins origins
	failed  map[string]bool // paths whose value did not decode
	errs    []error
	budget  int
	depth   int
	fields  map[reflect.Type]structInfo // yamlFields, cached for merge-heavy files
	tables  settings.Tables             // the rule of each key, by struct type
}

type structInfo struct {
	index map[string]int
	keys  []string
}

// readFile parses path into cfg. A nil error with d.errs set means the file
// parsed as YAML but some keys are wrong; a non-nil error means the file
// could not be used at all.
func (d *fileDecoder) readFile(cfg *Config) error {
	data, err := os.ReadFile(d.file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("config %s: %s: %w", d.file, pe.Op, pe.Err)
		}
		return fmt.Errorf("config %s: %w", d.file, err)
	}
	root, err := d.parse(data)
	if err != nil {
		return err
	}
	if root == nil { // empty file, or only comments
		return nil
	}
	d.budget = maxNodes
	d.decode(root, reflect.ValueOf(cfg).Elem(), "", settings.Rule{})
	return nil
}

// parse returns the root node of the single document in data, nil for an
// empty document.
func (d *fileDecoder) parse(data []byte) (root *yaml.Node, err error) {
	// yaml.v3 has panicked on malformed input before (CVE-2022-28948); a
	// bad config file must give an error, never a crash.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, &fieldError{at: origin{kind: fromFile, name: d.file}, msg: fmt.Sprintf("invalid YAML: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, d.syntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, d.syntaxError(err)
		}
		return nil, &fieldError{at: origin{kind: fromFile, name: d.file, line: extra.Line},
			msg: "a second YAML document (after ---); put the whole configuration in one document"}
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// syntaxError rewords yaml.v3's "yaml: line 3: message" as
// "config FILE line 3: invalid YAML: message".
func (d *fileDecoder) syntaxError(err error) error {
	at := origin{kind: fromFile, name: d.file}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				at.line, msg = n, tail
			}
		}
	}
	return &fieldError{at: at, msg: "invalid YAML: " + msg, err: err}
}

func (d *fileDecoder) at(n *yaml.Node) origin {
	return origin{kind: fromFile, name: d.file, line: n.Line}
}

// report records a problem that does not spoil the value at path.
func (d *fileDecoder) report(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &fieldError{at: d.at(n), path: path, msg: fmt.Sprintf(format, args...)})
}

// fail records a value at path that could not be decoded; validation then
// stays quiet about that path rather than report a second error for it.
func (d *fileDecoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.report(n, path, format, args...)
	d.failed[path] = true
}

// resolve follows aliases and charges the node to the budget; nil means the
// budget is spent (reported once).
func (d *fileDecoder) resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	d.budget--
	if d.budget == 0 {
		d.report(n, "", "document too complex: more than %d values once aliases are expanded", maxNodes)
	}
	if d.budget < 0 {
		return nil
	}
	return n
}

// enter counts one level of nesting; false (reported once) when too deep.
func (d *fileDecoder) enter(n *yaml.Node, path string) bool {
	if d.depth == maxDepth {
		d.report(n, path, "nested more than %d levels deep (check merge keys and anchors)", maxDepth)
		d.budget = -1 // stop the walk: the rest would only repeat this
		return false
	}
	d.depth++
	return true
}

func (d *fileDecoder) leave() { d.depth-- }

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// describe names what a node holds, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "nothing (null)"
	}
	v := n.Value
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	return strconv.Quote(v)
}

// decode sets v, of any type found in Config, from n; r is the rule of
// v's key (the zero Rule for an entry of a list or a mapping).
func (d *fileDecoder) decode(n *yaml.Node, v reflect.Value, path string, r settings.Rule) {
	if n = d.resolve(n); n == nil || !d.enter(n, path) {
		return
	}
	defer d.leave()
	t := v.Type()
	bad := func() { d.fail(n, path, "must be %s, got %s", settings.Expectation(r, t), describe(n)) }

	switch {
	case t == settings.StringsType && n.Kind == yaml.SequenceNode:
		list := make([]string, 0, len(n.Content))
		d.origins[path] = d.at(n)
		for i, item := range n.Content {
			var s string
			d.decode(item, reflect.ValueOf(&s).Elem(), indexPath(path, i), settings.Rule{})
			list = append(list, s)
		}
		v.Set(reflect.ValueOf(list))
		return
	case t == settings.StringsType && isNull(n):
		v.Set(reflect.ValueOf([]string{}))
		d.origins[path] = d.at(n)
		return
	case t.Kind() == reflect.String && isNull(n):
		v.SetString("")
		d.origins[path] = d.at(n)
		return
	case settings.IsScalar(t):
		// A scalar for a []string is a comma separated list, as in env.
		if n.Kind != yaml.ScalarNode || isNull(n) || settings.SetScalar(v, n.Value) != nil {
			bad()
			return
		}
		d.origins[path] = d.at(n)
		return
	}

	switch t.Kind() {
	case reflect.Struct:
		if isNull(n) { // "filter:" with nothing: keep the defaults
			d.origins[path] = d.at(n)
			return
		}
		if n.Kind != yaml.MappingNode {
			bad()
			return
		}
		d.origins[path] = d.at(n)
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if isNull(n) {
			v.Set(reflect.MakeSlice(t, 0, 0))
			d.origins[path] = d.at(n)
			return
		}
		if n.Kind != yaml.SequenceNode {
			bad()
			return
		}
		d.origins[path] = d.at(n)
		out := reflect.MakeSlice(t, 0, len(n.Content))
		for i, item := range n.Content {
			elem := reflect.New(t.Elem()).Elem()
			if t.Elem() == reflect.TypeFor[apps.App]() {
				// An app entry overrides only the keys it sets.
				elem.Set(reflect.ValueOf(apps.Defaults()))
			}
			d.decode(item, elem, indexPath(path, i), settings.Rule{})
			out = reflect.Append(out, elem)
		}
		v.Set(out)
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			d.decodeOther(n, v, path, r)
			return
		}
		if isNull(n) {
			v.Set(reflect.Zero(t))
			d.origins[path] = d.at(n)
			return
		}
		if n.Kind != yaml.MappingNode {
			bad()
			return
		}
		d.origins[path] = d.at(n)
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		seen := make(map[string]int, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := d.resolve(n.Content[i])
			if k == nil {
				return
			}
			if k.Kind != yaml.ScalarNode || isNull(k) {
				d.fail(k, path, "names must be strings, got %s", describe(k))
				continue
			}
			if line, dup := seen[k.Value]; dup {
				d.fail(k, path, "%q is set twice (first on line %d)", safeKey(k.Value), line)
				continue
			}
			seen[k.Value] = k.Line
			elem := reflect.New(t.Elem()).Elem()
			d.decode(n.Content[i+1], elem, joinPath(path, safeKey(k.Value)), settings.Rule{})
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), elem)
		}
		v.Set(m)
	default:
		d.decodeOther(n, v, path, r)
	}
}

// decodeOther leaves a type this walker does not know (a field added to
// apps.App later, say) to yaml.v3.
func (d *fileDecoder) decodeOther(n *yaml.Node, v reflect.Value, path string, r settings.Rule) {
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.fail(n, path, "must be %s: %s", settings.Expectation(r, v.Type()), strings.TrimPrefix(err.Error(), "yaml: "))
		return
	}
	d.origins[path] = d.at(n)
}

// yamlFields maps the yaml keys of struct type t to field indexes, and lists
// the keys in declaration order for suggestions.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	fields := settings.Fields(t)
	idx := make(map[string]int, len(fields))
	keys := make([]string, 0, len(fields))
	for _, f := range fields {
		idx[f.Key] = f.Index
		keys = append(keys, f.Key)
	}
	return idx, keys
}

// decodeStruct sets the fields of struct v from mapping n. Merge keys
// ("<<: *base") apply first and explicit keys override them, as in YAML.
func (d *fileDecoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	info, ok := d.fields[v.Type()]
	if !ok {
		info.index, info.keys = yamlFields(v.Type())
		if d.fields == nil {
			d.fields = make(map[reflect.Type]structInfo)
		}
		d.fields[v.Type()] = info
	}
	fields, keys := info.index, info.keys
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, n.Content[i+1])
		}
	}
	for _, m := range merges {
		d.merge(m, v, path)
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.resolve(n.Content[i])
		if k == nil {
			return
		}
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.report(k, path, "keys must be names, got %s", describe(k))
			continue
		}
		name := k.Value
		if line, dup := seen[name]; dup {
			d.report(k, joinPath(path, name), "set twice (first on line %d)", line)
			continue
		}
		seen[name] = k.Line
		fi, ok := fields[name]
		if !ok {
			msg := fmt.Sprintf("unknown key %q", safeKey(name))
			if safeKey(name) != name {
				msg += " (a missing \":\" after the key?)"
			} else if s := suggest(name, keys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += "; expected one of " + strings.Join(keys, ", ")
			}
			d.report(k, path, "%s", msg)
			continue
		}
		d.decode(n.Content[i+1], v.Field(fi), joinPath(path, name), d.tables.Rule(v.Type(), name))
	}
}

// merge applies the value of a "<<" key: a mapping, or a list of mappings
// of which the earlier ones win.
func (d *fileDecoder) merge(m *yaml.Node, v reflect.Value, path string) {
	if m = d.resolve(m); m == nil || !d.enter(m, path) {
		return
	}
	defer d.leave()
	switch m.Kind {
	case yaml.MappingNode:
		d.decodeStruct(m, v, path)
		return
	case yaml.SequenceNode:
		for i := len(m.Content) - 1; i >= 0; i-- {
			item := d.resolve(m.Content[i])
			if item == nil {
				return
			}
			if item.Kind != yaml.MappingNode {
				d.report(item, path, "<< must merge mappings, got %s", describe(item))
				continue
			}
			d.decodeStruct(item, v, path)
		}
		return
	}
	d.report(m, path, "<< must merge a mapping or a list of mappings, got %s", describe(m))
}
