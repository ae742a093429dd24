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
#                   series up to it, go test of the packages it touches,
#                   go build, the integration scenarios on that binary
#                   (make pr)
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
g() { git -C "$tree" -c user.name=ollama-backend-select -c user.email=fork@localhost \
	-c core.abbrev=12 -c advice.detachedHead=false "$@"; }

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
	prev=upstream
	verify=$out/verify
	failed=()
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
		for i in $(seq 1 "$n"); do
			git -C "$verify" -c user.name=ollama-backend-select -c user.email=fork@localhost \
				am -q "$out/$i"/*.patch || die "series $i does not apply with git am on $version (after 1..$((i - 1)))"
		done
		mapfile -t pkgs < <(git -C "$verify" diff --name-only upstream HEAD -- '*.go' |
			xargs -n1 dirname | sort -u | sed 's|^|./|')
		say "PR $n ($pr): $(ls "$out/$n" | wc -l) patches, $lines changed non-test lines; go test ${pkgs[*]}"
		(cd "$verify" && go test -trimpath -count=1 "${pkgs[@]}")
		(cd "$verify" && go build -trimpath -ldflags="-X=$module/version.Version=${version#v}-pr$n" \
			-o "$out/bin/$n/ollama" .)
		if [ -f "$prs/$pr/scenarios" ]; then
			run=$(grep -vE '^[[:space:]]*(#|$)' "$prs/$pr/scenarios" | paste -sd'|')
			say "PR $n: integration scenarios '$run' on pristine $version + series 1..$n"
			# A failing scenario does not stop the later pull requests' checks
			# (their series and tests stand on their own); make pr fails at the end.
			if ! OBS_OLLAMA_BIN=$out/bin/$n/ollama OBS_UPSTREAM_ONLY=1 \
				go test -tags integration -count=1 -timeout 20m -run "$run" ./integration/; then
				say "PR $n: integration scenarios FAILED"
				failed+=("$n")
			fi
		fi
		if [[ " ${failed[*]} " == *" $n "* ]]; then
			say "PR $n: series, tests and build verified, scenarios failed, in $((SECONDS - t0)) s"
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
