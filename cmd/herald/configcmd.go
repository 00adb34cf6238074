package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/migrate"
)

const configUsage = `Usage:
  herald config check [--env] FILE          validate a Herald YAML config
  herald config import soketi [-o OUT] [--env-file F] [--env] [FILE.json]
                                            translate a soketi config to Herald YAML

check loads FILE through the same loader and validation as 'herald serve'
and prints every problem with its line and key (exit 1), or "ok" (exit 0).
With --env, HERALD_* environment variables apply on top, as they would at
start.

import reads soketi's JSON config file and/or its SOKETI_* variables (from
an env file, or with --env from the environment; they win over the file, as
in soketi), writes the YAML to stdout (or OUT) and one warning line on stderr
per soketi setting it could not carry over (exit 0; 1 when the input is not
a soketi config). docs/migrating.md explains the differences.
`

// configCmd runs `herald config ...`. Exit codes: 0 fine, 1 the file has
// problems, 2 usage.
func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		w := stderr
		if len(args) > 0 {
			w = stdout
		}
		fmt.Fprint(w, configUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "check":
		return configCheck(args[1:], stdout, stderr)
	case "import":
		return configImport(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "herald config: unknown command %q\n\n%s", args[0], configUsage)
	return 2
}

func configCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("herald config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	withEnv := fs.Bool("env", false, "apply HERALD_* environment variables on top of the file, as 'herald serve' does")
	fs.Usage = func() { fmt.Fprint(fs.Output(), configUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "herald config check: give one config file\n\n%s", configUsage)
		return 2
	}
	src := config.Source{File: fs.Arg(0)}
	if *withEnv {
		src.Env = os.LookupEnv
	}
	cfg, err := config.Load(src)
	if err != nil {
		// One problem per line, each naming the file, line and key (the
		// loader's own messages: the server prints the same at start).
		fmt.Fprintf(stderr, "%s: invalid configuration:\n%s\n", fs.Arg(0), indent(err.Error()))
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d app(s), port %d)\n", fs.Arg(0), len(cfg.Apps), cfg.Port)
	if cfg.UsesDevApp() {
		// Valid, but not what anyone wants in production.
		fmt.Fprintf(stdout, "note: the first app has the development app's public secret (no apps configured?); configure your own for production\n")
	}
	return 0
}

func configImport(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "soketi" {
		fmt.Fprintf(stderr, "herald config import: the source must be soketi (herald config import soketi FILE.json)\n\n%s", configUsage)
		return 2
	}
	fs := flag.NewFlagSet("herald config import soketi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	outPath := fs.String("o", "", "write the YAML to this file instead of stdout")
	envFile := fs.String("env-file", "", "read SOKETI_* variables from this .env file")
	fromEnv := fs.Bool("env", false, "read SOKETI_* variables from the environment")
	fs.Usage = func() { fmt.Fprint(fs.Output(), configUsage) }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 1 || (fs.NArg() == 0 && *envFile == "" && !*fromEnv) {
		fmt.Fprintf(stderr, "herald config import soketi: give a soketi JSON file, --env-file or --env\n\n%s", configUsage)
		return 2
	}
	var data []byte
	if fs.NArg() == 1 {
		var err error
		if data, err = readLimited(fs.Arg(0)); err != nil {
			fmt.Fprintf(stderr, "herald config import soketi: %v\n", err)
			return 1
		}
	}
	env := map[string]string{}
	if *fromEnv {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "SOKETI_") {
				env[k] = v
			}
		}
	}
	if *envFile != "" {
		raw, err := readLimited(*envFile)
		if err != nil {
			fmt.Fprintf(stderr, "herald config import soketi: %v\n", err)
			return 1
		}
		for k, v := range parseEnvFile(raw) {
			env[k] = v
		}
	}
	res, err := migrate.SoketiWithEnv(data, env)
	if err != nil {
		fmt.Fprintf(stderr, "herald config import soketi: %v\n", err)
		return 1
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if *outPath == "" {
		if _, err := stdout.Write(res.YAML); err != nil {
			fmt.Fprintf(stderr, "herald config import soketi: %v\n", err)
			return 1
		}
		return 0
	}
	// 0600: the file holds app secrets.
	if err := os.WriteFile(*outPath, res.YAML, 0o600); err != nil {
		fmt.Fprintf(stderr, "herald config import soketi: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "wrote %s (%d warning(s)); check it with: herald config check %s\n", *outPath, len(res.Warnings), *outPath)
	return 0
}

// parseEnvFile reads KEY=VALUE lines (a .env or docker env file): blank
// lines and # comments skipped, "export " and one pair of quotes removed.
func parseEnvFile(raw []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "export "))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[strings.TrimSpace(k)] = v
	}
	return out
}

// readLimited reads a file of at most 4 MB (a soketi config is a few KB).
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	const limit = 4 << 20
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s: larger than 4 MB", path)
	}
	return data, nil
}
