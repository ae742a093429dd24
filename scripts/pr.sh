#!/usr/bin/env bash
# The upstream pull requests (docs/upstream/): each is a folder
# upstream/pr/<N>-<name>/ of steps, one commit each, in name order:
#
#   <step>/message     the commit message
#   <step>/add/...     new files, at their path in upstream's tree (this
#                      project's own code)
#   <step>/edit.patch  the edits of upstream's files, as git diff writes them
#   scenarios          (per PR) a go test -run pattern of ./integration that
#                      the PR claims to fix, run on pristine + its series
#
#   pr.sh src       build/pr/tree: a work tree of the pristine release (the
#                   "upstream" tag of build/ollama) with one commit per step,
#                   tag pr-<N> after each PR; to edit (make pr-src)
#   pr.sh patches   writes the steps back from build/pr/tree's commits,
#                   byte-stable (make pr-patches)
#   pr.sh check     src, then the round trip (the steps regenerate byte for
#                   byte), format-patch of each series into build/pr/<N>/,
#                   and per PR on a fresh pristine work tree: git am of the
#                   series up to it, each of its commits checked alone
#                   (gofmt, go vet, upstream's golangci-lint and go test of
#                   the packages the commit touches), go build, and the
#                   integration scenarios with OBS_UPSTREAM_ONLY=1 on the
#                   binary before the PR (they must fail) and with it (they
#                   must pass) (make pr)
#
#   AUTHOR="Name <email>" authors the commits and so the patches (default:
#   git config user.name and user.email; with neither, src and patches
#   fail and a check's series are marked unattributed).
#
# usage: pr.sh src|patches|check
set -euo pipefail

repo=$(pwd)
prs=$repo/upstream/pr
out=$repo/build/pr
tree=$out/tree
base=$repo/build/ollama
module=github.com/ollama/ollama

say() { echo "pr: $*" >&2; }
die() { echo "pr: $*" >&2; exit 1; }

# The author of the patches: AUTHOR="Name <email>" (make pr-patches
# AUTHOR=...), else git's user.name and user.email.
author=${AUTHOR:-}
if [ -z "$author" ] && name=$(git config user.name) && email=$(git config user.email); then
	author="$name <$email>"
fi
# A check only verifies: its series in build/pr are build output, so on a
# machine with no git identity (CI) they are marked unattributed, never
# given a made-up person.
if [ -z "$author" ] && [ "${1:-}" = check ]; then
	author="Unattributed <unattributed@invalid>"
	say "no AUTHOR and no git identity: the series in build/pr are unattributed; make pr AUTHOR=\"Name <email>\" to sign them"
fi
[ -n "$author" ] || die "no author for the patches: pass AUTHOR=\"Name <email>\" (make pr-patches AUTHOR=...) or set git config user.name and user.email"
[[ $author =~ ^([^<>]*[^<> ])\ \<([^<>@ ]+@[^<> ]+)\>$ ]] || die "AUTHOR=\"$author\" is not \"Name <email>\""
author_name=${BASH_REMATCH[1]} author_email=${BASH_REMATCH[2]}
g() { git -C "$tree" -c user.name="$author_name" -c user.email="$author_email" \
	-c core.abbrev=12 -c advice.detachedHead=false "$@"; }
v() { git -C "$verify" -c user.name="$author_name" -c user.email="$author_email" \
	-c core.abbrev=12 -c advice.detachedHead=false "$@"; }

# check_commit: the verify tree's HEAD commit as upstream's CI checks it:
# gofmt, go vet, golangci-lint and go test of the packages it touches.
check_commit() {
	local files pkgs
	mapfile -t files < <(v diff --name-only --diff-filter=d HEAD^ HEAD -- '*.go')
	[ ${#files[@]} -gt 0 ] || return 0
	mapfile -t pkgs < <(printf '%s\n' "${files[@]}" | xargs -n1 dirname | sort -u | sed 's|^|./|')
	local bad
	bad=$(cd "$verify" && gofmt -l "${files[@]}")
	[ -z "$bad" ] || die "$(v log -1 --format=%s): not gofmt'd: $bad"
	(cd "$verify" && go vet "${pkgs[@]}") || die "$(v log -1 --format=%s): go vet"
	(cd "$verify" && "$repo/scripts/golangci-lint.sh" run --config .golangci.yaml "${pkgs[@]}") ||
		die "$(v log -1 --format=%s): golangci-lint (upstream's .golangci.yaml)"
	(cd "$verify" && go test -trimpath -count=1 "${pkgs[@]}") || die "$(v log -1 --format=%s): go test"
	say "  $(v log -1 --format=%s): gofmt, vet, golangci-lint, go test ${pkgs[*]}"
}

# scenarios N BIN: PR N's integration scenarios on BIN; 0 when they pass.
scenarios() {
	local run
	run=$(grep -vE '^[[:space:]]*(#|$)' "$prs/$1/scenarios" | paste -sd'|')
	OBS_OLLAMA_BIN=$2 OBS_UPSTREAM_ONLY=1 \
		go test -tags integration -count=1 -timeout 20m -run "$run" ./integration/
}

[ -d "$base/.git" ] || die "no $base: run 'make src' first"
version=$(cat "$base/.git/fork-state/upstream")

mapfile -t pulls < <(cd "$prs" && ls -d [0-9]*-* | sort -n)
[ ${#pulls[@]} -gt 0 ] || die "no pull request in upstream/pr"

# steps PR: the step folders of one pull request, in order.
steps() { (cd "$prs/$1" && ls -d */ | sed 's|/$||' | sort); }

# A fixed date keeps the commits, and so the series, the same every time.
export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"

assemble() {
	if [ -d "$tree/.git" ] || [ -f "$tree/.git" ]; then
		if [ -n "$(g status --porcelain)" ]; then
			die "$tree has uncommitted changes: commit them and run 'make pr-patches', or remove $tree"
		fi
		if [ -f "$out/head" ] && [ "$(g rev-parse HEAD)" != "$(cat "$out/head")" ]; then
			die "$tree has commits the steps do not hold yet: run 'make pr-patches' (or remove $tree)"
		fi
	fi
	rm -rf "$tree"
	git -C "$base" worktree prune
	git -C "$base" worktree add -q --detach "$tree" upstream
	local n=0
	for pr in "${pulls[@]}"; do
		for step in $(steps "$pr"); do
			local d=$prs/$pr/$step
			[ -d "$d/add" ] && cp -a "$d/add/." "$tree/"
			[ -f "$d/edit.patch" ] && g apply --index "$d/edit.patch"
			g add -A
			g commit -q --no-verify -F "$d/message"
			n=$((n + 1))
		done
		g tag -f "pr-${pr%%-*}" >/dev/null
	done
	g rev-parse HEAD >"$out/head"
	say "build/pr/tree: $n commits for ${#pulls[@]} pull requests on pristine $version"
}

# write_steps DIR: the steps of build/pr/tree's commits into DIR/<pr>/<step>.
write_steps() {
	local dest=$1 prev=upstream
	for pr in "${pulls[@]}"; do
		mapfile -t st < <(steps "$pr")
		mapfile -t commits < <(g rev-list --reverse "$prev..pr-${pr%%-*}")
		[ ${#st[@]} = ${#commits[@]} ] ||
			die "$pr has ${#st[@]} steps, build/pr/tree ${#commits[@]} commits for it: add or remove a step folder"
		for i in "${!st[@]}"; do
			local c=${commits[$i]} d=$dest/$pr/${st[$i]}
			rm -rf "$d"
			mkdir -p "$d"
			g log -1 --format=%B "$c" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >"$d/message"
			while IFS= read -r f; do
				mkdir -p "$d/add/$(dirname "$f")"
				g show "$c:$f" >"$d/add/$f"
			done < <(g diff --name-only --diff-filter=A "$c^" "$c")
			mapfile -t edited < <(g diff --name-only --diff-filter=a "$c^" "$c")
			if [ ${#edited[@]} -gt 0 ]; then
				g -c diff.noprefix=false -c diff.mnemonicPrefix=false diff --no-color --no-ext-diff \
					"$c^" "$c" -- "${edited[@]}" >"$d/edit.patch"
			fi
		done
		[ -f "$prs/$pr/scenarios" ] && cp "$prs/$pr/scenarios" "$dest/$pr/"
		prev=pr-${pr%%-*}
	done
}

# The non-test lines a series changes (added + removed).
count_lines() {
	git -C "$1" diff --numstat "$2" "$3" | awk '$3 !~ /_test\.go$/ {n += $1 + $2} END {print n + 0}'
}

case "${1:-}" in
src)
	assemble
	;;
patches)
	[ -d "$tree" ] || die "no $tree: run 'make pr-src' first"
	[ -z "$(g status --porcelain)" ] || die "$tree has uncommitted changes: commit them first"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# Move a PR's tag to HEAD when commits were added after the last one.
	last=pr-${pulls[-1]%%-*}
	[ "$(g rev-parse HEAD)" = "$(g rev-parse "$last")" ] || g tag -f "$last" HEAD >/dev/null
	write_steps "$tmp"
	for pr in "${pulls[@]}"; do
		rm -rf "${prs:?}/$pr"
		cp -a "$tmp/$pr" "$prs/$pr"
	done
	g rev-parse HEAD >"$out/head"
	say "upstream/pr: steps written from build/pr/tree"
	;;
check)
	start=$SECONDS
	assemble
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	write_steps "$tmp"
	if ! diff -r "$prs" "$tmp" >"$tmp.diff"; then
		cat "$tmp.diff" >&2
		rm -f "$tmp.diff"
		die "upstream/pr is not what build/pr/tree regenerates: edit in build/pr/tree and run 'make pr-patches'"
	fi
	rm -f "$tmp.diff"
	say "round trip: the steps regenerate byte for byte"
	"$repo/scripts/golangci-lint.sh" version >/dev/null # installed before the series
	prev=upstream
	verify=$out/verify
	failed=()
	# the pristine binary: what PR 1's scenarios run on before it
	rm -rf "$verify"
	git -C "$base" worktree prune
	git -C "$base" worktree add -q --detach "$verify" upstream
	(cd "$verify" && go build -trimpath -ldflags="-X=$module/version.Version=${version#v}" -o "$out/bin/0/ollama" .)
	for pr in "${pulls[@]}"; do
		n=${pr%%-*}
		t0=$SECONDS
		rm -rf "${out:?}/$n"
		git -C "$tree" -c core.abbrev=12 format-patch -q --zero-commit --no-signature \
			-o "$out/$n" "$prev..pr-$n"
		lines=$(count_lines "$tree" "$prev" "pr-$n")
		# A fresh pristine tree each time: the series must apply on the
		# release itself, PR n on PRs 1..n-1, with git am and no fuzz.
		rm -rf "$verify"
		git -C "$base" worktree prune
		git -C "$base" worktree add -q --detach "$verify" upstream
		for i in $(seq 1 "$((n - 1))"); do
			v am -q "$out/$i"/*.patch || die "series $i does not apply with git am on $version (after 1..$((i - 1)))"
		done
		say "PR $n ($pr): $(ls "$out/$n" | wc -l) patches, $lines changed non-test lines; every commit checked alone:"
		# every commit of the series as upstream's CI checks it
		for p in "$out/$n"/*.patch; do
			v am -q "$p" || die "series $n does not apply with git am on $version (after 1..$((n - 1)))"
			check_commit
		done
		(cd "$verify" && go build -trimpath -ldflags="-X=$module/version.Version=${version#v}-pr$n" \
			-o "$out/bin/$n/ollama" .)
		if [ -f "$prs/$pr/scenarios" ]; then
			say "PR $n: integration scenarios, before (pristine $version + 1..$((n - 1))): they must fail"
			# A failing check does not stop the later pull requests' checks
			# (their series and tests stand on their own); make pr fails at the end.
			if scenarios "$pr" "$out/bin/$((n - 1))/ollama" >"$out/before-$n.log" 2>&1; then
				say "PR $n: the scenarios PASS without the pull request: they do not show what it fixes"
				failed+=("$n")
			else
				say "PR $n: scenarios fail before, as they should ($(grep -c -- '^\s*--- FAIL' "$out/before-$n.log") failures, build/pr/before-$n.log)"
			fi
			say "PR $n: integration scenarios, after (pristine $version + 1..$n): they must pass"
			if ! scenarios "$pr" "$out/bin/$n/ollama"; then
				say "PR $n: integration scenarios FAILED"
				failed+=("$n")
			fi
		fi
		if [[ " ${failed[*]} " == *" $n "* ]]; then
			say "PR $n: series, lint, tests and build verified, scenarios failed, in $((SECONDS - t0)) s"
		else
			say "PR $n verified in $((SECONDS - t0)) s"
		fi
		prev=pr-$n
	done
	rm -rf "$verify"
	git -C "$base" worktree prune
	[ ${#failed[@]} = 0 ] || die "the integration scenarios of PR ${failed[*]} failed (above); the rest verified in $((SECONDS - start)) s"
	say "${#pulls[@]} pull requests verified on pristine $version in $((SECONDS - start)) s; series in build/pr/<N>/"
	;;
*)
	die "usage: pr.sh src|patches|check"
	;;
esac
