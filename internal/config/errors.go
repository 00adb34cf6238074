package config

import (
	"fmt"
	"strings"
)

// origin says where a value came from, so that an error points the operator
// at the line, variable or flag to fix.
type origin struct {
	kind originKind
	name string // file path, env variable or flag name (without dashes)
	line int    // file line, 0 when unknown
}

type originKind int

const (
	fromDefault originKind = iota
	fromFile
	fromEnv
	fromFlag
)

func (o origin) String() string {
	switch o.kind {
	case fromFile:
		if o.line > 0 {
			return fmt.Sprintf("config %s line %d", o.name, o.line)
		}
		return "config " + o.name
	case fromEnv:
		return "env " + o.name
	case fromFlag:
		return "flag --" + o.name
	default:
		return "config"
	}
}

// fieldError is one problem with one key. Load joins them with errors.Join.
type fieldError struct {
	at   origin
	path string // "port", "apps[1].webhooks[0].url"; "" for the whole source
	msg  string
	err  error // wrapped cause, if any
}

func (e *fieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.at.String())
	b.WriteString(": ")
	// An env variable or a flag already names its key; a file line does not.
	if e.path != "" && (e.at.kind == fromFile || e.at.kind == fromDefault) {
		b.WriteString(e.path)
		b.WriteString(": ")
	}
	b.WriteString(e.msg)
	return b.String()
}

func (e *fieldError) Unwrap() error { return e.err }

// origins records the origin of every value that was set, by path. Lookups
// fall back to the enclosing path ("apps[1].id" -> "apps[1]" -> "apps" ->
// ""), so a key that was never set is blamed on the entry that lacks it.
type origins map[string]origin

func (m origins) of(path string) origin {
	for {
		if o, ok := m[path]; ok {
			return o
		}
		if path == "" {
			return origin{}
		}
		path = parentPath(path)
	}
}

// parentPath strips the last ".key" or "[i]" from path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// joinPath appends key to path with a dot.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath appends [i] to path.
func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// safeKey shortens a key for a message. A key with a space in it is most
// likely "key value" with the colon missing, and the value may be a secret,
// so only the first word is shown.
func safeKey(k string) string {
	if i := strings.IndexAny(k, " \t\r\n"); i >= 0 {
		k = k[:i] + "…"
	}
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	return k
}
