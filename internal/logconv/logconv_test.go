package logconv

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// logMethods are the names that take slog's (msg, key, value, ...)
// arguments, with the project's lower-case wrappers (webhooks' rate-limited
// warn). A false positive costs a rename; a miss costs an operator's query.
var logMethods = map[string]bool{
	"Debug": true, "Info": true, "Warn": true, "Error": true,
	"DebugContext": true, "InfoContext": true, "WarnContext": true, "ErrorContext": true,
	"Log": true, "LogAttrs": true, "With": true,
	"debug": true, "info": true, "warn": true,
}

// attrFuncs are slog's attribute constructors: their first argument is a key.
var attrFuncs = map[string]bool{
	"String": true, "Int": true, "Int64": true, "Uint64": true, "Float64": true,
	"Bool": true, "Time": true, "Duration": true, "Any": true, "Group": true,
}

type source struct {
	dir  string // slash path from the module root, e.g. internal/server
	file *ast.File
}

func parseTree(t *testing.T, fset *token.FileSet) []source {
	t.Helper()
	var out []source
	for _, root := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join("..", "..", root), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(filepath.Join("..", ".."), filepath.Dir(path))
			out = append(out, source{dir: filepath.ToSlash(rel), file: f})
			return nil
		})
		if err != nil {
			t.Fatalf("reading %s: %v", root, err)
		}
	}
	if len(out) < 50 {
		t.Fatalf("found %d Go files under internal/ and cmd/: is the test run from its own directory?", len(out))
	}
	return out
}

func strLit(e ast.Expr) (string, bool) {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(b.Value)
	return s, err == nil
}

// TestLogConvention checks, in every non-test source of internal/ and cmd/:
// the app's attribute is app_id (never app); component is set once, by
// Logger.With where loggers are built (internal/server, cmd); no message
// repeats a component as a "component: " prefix; no package logs to
// slog.Default (a nil Options.Logger discards).
func TestLogConvention(t *testing.T) {
	fset := token.NewFileSet()
	srcs := parseTree(t, fset)

	// Components are whatever the tree names with "component", "x".
	components := map[string]bool{}
	for _, s := range srcs {
		ast.Inspect(s.file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			for i := 0; i+1 < len(call.Args); i++ {
				if k, _ := strLit(call.Args[i]); k == "component" {
					if v, ok := strLit(call.Args[i+1]); ok {
						components[v] = true
					}
				}
			}
			return true
		})
	}
	for _, c := range []string{"hub", "transport", "relay", "webhooks"} {
		if !components[c] {
			t.Fatalf("component %q not found: the scan no longer sees where loggers are built", c)
		}
	}

	for _, s := range srcs {
		ast.Inspect(s.file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pos := fset.Position(call.Pos())
			name := sel.Sel.Name
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "slog" {
				switch {
				case name == "Default":
					t.Errorf("%s: slog.Default(): take the logger from the package's Options (nil discards)", pos)
				case logMethods[name]:
					t.Errorf("%s: slog.%s logs to the default logger: use the package's logger", pos, name)
				case attrFuncs[name] && len(call.Args) > 0:
					if k, _ := strLit(call.Args[0]); k == "app" {
						t.Errorf(`%s: attribute "app": the app's attribute is "app_id"`, pos)
					}
				}
				return true
			}
			if !logMethods[name] {
				return true
			}
			for _, a := range call.Args {
				v, ok := strLit(a)
				if !ok {
					continue
				}
				switch {
				case v == "app":
					t.Errorf(`%s: attribute "app": the app's attribute is "app_id"`, pos)
				case v == "component" && name != "With":
					t.Errorf("%s: component added per call: set it once with Logger.With where the logger is built", pos)
				case v == "component" && !strings.HasPrefix(s.dir, "internal/server") && !strings.HasPrefix(s.dir, "cmd/"):
					t.Errorf("%s: component set in %s: it is set where loggers are built (internal/server, cmd)", pos, s.dir)
				}
				if i := strings.Index(v, ": "); i > 0 && components[v[:i]] {
					t.Errorf("%s: message %q repeats the component attribute as a prefix", pos, v)
				}
			}
			return true
		})
	}
}
