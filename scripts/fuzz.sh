#!/usr/bin/env bash
# Runs every Go fuzz target in the module for $FUZZTIME (default 5s) each.
# Go allows one -fuzz target per invocation, so each runs on its own.
set -euo pipefail
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5s}
cd "$(dirname "$0")/.."
found=0
while IFS= read -r file; do
	pkg="./$(dirname "$file")"
	for name in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		found=$((found + 1))
		echo "fuzz $pkg $name ($FUZZTIME)"
		# From the package's directory, so nested modules (sdk/) work too.
		(cd "$pkg" && "$GO" test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" .)
	done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' cmd internal sdk 2>/dev/null | sort)
if [ "$found" -eq 0 ]; then
	echo "no fuzz targets found" >&2
	exit 1
fi
echo "fuzz: $found targets passed"
