#!/usr/bin/env bash
# The upstream matrix (docs/upstream.md): for each release in
# scripts/upstream-releases, whether the module proxy serves it and the
# series applies strictly (no fuzz, no 3-way merge); for the releases named
# on the command line also whether it builds, `make test` passes and the
# integration suite passes. Each release's raw logs and result go to
# build/upstream-matrix/<release>/ (build output, not committed); results of earlier runs are kept for the
# steps not run again (each says when it ran). The table in docs/upstream.md
# is then regenerated from all results.
#
# usage: upstream-matrix.sh [RELEASE...]    (RELEASE: also build/test/integration)
#        upstream-matrix.sh --only RELEASE... (probe, apply and run only those)
#        upstream-matrix.sh --table          (only regenerate the table)
# Heavy: a cgo-era release builds llama.cpp (about 10 min alone on 2 cores),
# then compiles upstream's tests (about 10 min); run it under nice.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
out=build/upstream-matrix
releases=scripts/upstream-releases
mkdir -p "$out"
module=github.com/ollama/ollama
pin=$(go list -m -f '{{.Version}}' "$module")
stamp() { date -u +%Y-%m-%dT%H:%MZ; }

set_result() { # release key value
	local f=$out/$1/result
	touch "$f"
	sed -i "/^$2=/d" "$f"
	echo "$2=$3" >>"$f"
}
get_result() { sed -n "s/^$2=//p" "$out/$1/result" 2>/dev/null; }

# Releases from v0.30 run llama-server built by CMake FetchContent (network);
# only their Go side builds here.
cgo_era() { [[ $(printf '%s\n' "$1" v0.29.99 | sort -V | head -1) == "$1" ]]; }

probe() { # release -> served | not served (reason)
	local v=$1 log=$out/$1/download.log
	if go mod download -json "$module@$v" >"$log" 2>&1 && grep -q '"Dir"' "$log"; then
		set_result "$v" served "yes"
	else
		reason=$(grep -oE '403 Forbidden|404 Not Found|410 Gone|checksum mismatch' "$log" | head -1)
		case $(grep -m1 -oE 'sumdb|@v/[^ ]*\.(info|zip|mod)' "$log") in
		sumdb*) reason="checksum database: $reason" ;;
		"") ;;
		*) reason="module proxy: $reason" ;;
		esac
		set_result "$v" served "no (${reason:-see download.log})"
	fi
}

applies() {
	local v=$1 log=$out/$1/src.log
	if make -s src UPSTREAM="$v" >"$log" 2>&1; then
		set_result "$v" applies "yes"
	else
		set_result "$v" applies "no: $(grep -m1 -E 'th patch of the series|does not apply|overlay' "$log" | sed 's/^src: //')"
	fi
	set_result "$v" applies_at "$(stamp)"
}

step() { # release name make-args...
	local v=$1 name=$2 log=$out/$1/$2.log start rc
	shift 2
	start=$(date +%s)
	echo "matrix: $v $name: $*" >&2
	{ echo "\$ $*"; echo "# $(stamp)"; } >"$log"
	"$@" >>"$log" 2>&1
	rc=$?
	echo "# exit $rc after $(( $(date +%s) - start )) s" >>"$log"
	if [ $rc = 0 ]; then
		set_result "$v" "$name" "yes ($(( ($(date +%s) - start + 59) / 60 )) min, $(stamp))"
	else
		set_result "$v" "$name" "no (exit $rc, $(stamp))"
	fi
	return $rc
}

full() {
	local v=$1 dist=dist/$1 tree=build/ollama-$1
	if [ "$v" = "$pin" ]; then dist=build/matrix-$v/dist tree=build/ollama; fi
	[ "$(get_result "$v" applies)" = yes ] || {
		for s in build test integration; do set_result "$v" $s "n/a (series does not apply)"; done
		return
	}
	# The pin's dist/bin is what others use; the matrix builds it elsewhere.
	if step "$v" build make build UPSTREAM="$v" DIST="$dist"; then
		if cgo_era "$v"; then
			step "$v" integration env OBS_OLLAMA_BIN="$repo/$dist/bin/ollama" \
				OBS_UPSTREAM_BIN=/nonexistent OBS_OLLAMA_SRC="$repo/$tree" \
				go test -tags integration -count=1 -timeout 40m ./integration/...
		else
			set_result "$v" integration "n/a (llama-server: CMake FetchContent, not buildable offline)"
		fi
	else
		set_result "$v" integration "n/a (no build)"
	fi
	step "$v" test make test UPSTREAM="$v"
}

table() {
	local v integ
	{
		echo "| release | served | series | applies strictly | builds | \`make test\` | integration suite |"
		echo "| --- | --- | --- | --- | --- | --- | --- |"
		grep -vE '^[[:space:]]*(#|$)' "$releases" | while read -r v; do
			if [[ $(get_result "$v" served) != yes ]]; then
				echo "| $v | $(get_result "$v" served | sed 's/^no/not served/') | | | | | |"
				continue
			fi
			integ=$(get_result "$v" integration)
			if [[ $integ == no* ]] && [ -f "$out/$v/integration.log" ]; then
				# name the failing tests; the rest of the suite passed
				integ="no: $(grep -oE '^--- FAIL: [A-Za-z0-9_]+' "$out/$v/integration.log" | cut -d' ' -f3 | paste -sd, | sed 's/,/, /g') ${integ#no }"
			fi
			echo "| $v | yes | $(get_result "$v" series | sed 's|^\(.\)|patches/\1|; s|^$|top level|') | $(get_result "$v" applies) | $(get_result "$v" build) | $(get_result "$v" test) | $integ |"
		done
	} >"$out/table.md"
	# docs/upstream.md holds a copy between the markers. Results live in
	# build/, which a fresh checkout lacks: a cell this machine has no
	# result for keeps what docs/upstream.md recorded (with its date).
	python3 - "$out/table.md" docs/upstream.md <<'PY'
import sys
a, b = '<!-- matrix:begin -->\n', '<!-- matrix:end -->'
def rows(text):
    return {r[0]: r for r in ([c.strip() for c in l.strip().strip('|').split('|')] for l in text.splitlines() if l.startswith('| v'))}
t = open(sys.argv[1]).read()
d = open(sys.argv[2]).read()
if a in d and b in d:
    old = rows(d[d.index(a):d.index(b)])
    lines = []
    for l in t.splitlines():
        if l.startswith('| v'):
            new = [c.strip() for c in l.strip().strip('|').split('|')]
            o = old.get(new[0])
            if o and len(o) == len(new) and new[1] == 'yes':
                new = [oc if (nc == '' or (oc.startswith(nc) and nc)) else nc for nc, oc in zip(new, o)]
                l = '| ' + ' | '.join(new) + ' |'
        lines.append(l)
    t = '\n'.join(lines) + '\n'
    open(sys.argv[1], 'w').write(t)
    d = d[:d.index(a) + len(a)] + t + d[d.index(b):]
    open(sys.argv[2], 'w').write(d)
PY
	echo "matrix: table in $out/table.md and docs/upstream.md" >&2
}

if [ "${1:-}" = --table ]; then table; exit 0; fi
list() { grep -vE '^[[:space:]]*(#|$)' "$releases"; }
if [ "${1:-}" = --only ]; then
	shift
	list() { printf '%s\n' "$@"; }
fi
list "$@" | while read -r v; do
	mkdir -p "$out/$v"
	probe "$v"
	if [ "$(get_result "$v" served)" = yes ]; then
		applies "$v"
		echo "matrix: $v applies: $(get_result "$v" applies)" >&2
	fi
done
for v in "$@"; do
	mkdir -p "$out/$v"
	full "$v"
done
table
