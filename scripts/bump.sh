#!/usr/bin/env bash
# Moves the patch series to another upstream release, by real 3-way merges
# (git cherry-pick of the pinned tree's commits), never by fuzz.
#
#   bump.sh --pin VERSION
#       Move the pin: four commits in this order (docs/upstream.md, "Bump"):
#         1. bump: go.mod/go.sum require VERSION
#         2. conflict-resolved patches (those whose cherry-pick stopped)
#         3. mechanical refresh (patches that applied, new line numbers/index)
#         4. dropped patches (empty on VERSION: upstream has the change)
#   bump.sh --continue [VERSION]
#       After resolving a stopped cherry-pick (edit, git add,
#       git -C TREE cherry-pick --continue), carry on where it stopped.
#       A patch that has no place on the base: commit it empty
#       (git commit --allow-empty -C <pinned commit>) and say why in
#       TREE/.git/bump/why ("NAME reason"). A change the base needs before the
#       series (e.g. an overlay file following an upstream rename): commit it
#       under the series (rebase) and list it in TREE/.git/bump/extra as
#       "NNNN-name.patch<TAB>subject".
#
# Run from the repository root; `make bump UPSTREAM=vX.Y.Z` runs --pin.
set -euo pipefail
repo=$(pwd)
module=github.com/ollama/ollama
mapfile -t pkgs <tools/overlay/packages
pinned=build/ollama

say() { echo "bump: $*" >&2; }
die() { echo "bump: $*" >&2; exit 1; }
g() { git -C "$tree" -c user.name=ollama-backend-select -c user.email=fork@localhost \
	-c core.abbrev=12 -c advice.detachedHead=false "$@"; }
commit() { git -c user.name=ollama-backend-select -c user.email=fork@localhost commit -q "$@"; }

stop_help() {
	cat >&2 <<MSG
bump: the cherry-pick of "$(g log -1 --format=%s CHERRY_PICK_HEAD 2>/dev/null || echo '?')" stopped on a conflict in:
$(g diff --name-only --diff-filter=U | sed 's/^/        /')
      Resolve it in $tree (edit, 'git -C $tree add FILE',
      'git -C $tree cherry-pick --continue'; keep the change minimal, gofmt),
      then run: scripts/bump.sh --continue
MSG
	exit 1
}

# A conflict that is only gofmt realignment of a keyed block is resolved by
# carrying the patch's entries over (scripts/resolve-realigned.py); the
# cherry-pick then continues. Anything else stops for a person.
resolve_realigned() {
	local files
	mapfile -t files < <(g diff --name-only --diff-filter=U)
	[ ${#files[@]} -gt 0 ] || return 1
	(cd "$tree" && python3 "$repo/scripts/resolve-realigned.py" "${files[@]}") || return 1
	g add -- "${files[@]}" && GIT_EDITOR=true g cherry-pick --continue >/dev/null
}

# Cherry-picks the pinned commits not yet ported, recording which stopped.
port() {
	local c
	while read -r c; do
		[ -n "$c" ] || continue
		if g -c merge.conflictStyle=diff3 cherry-pick --allow-empty --keep-redundant-commits "$c" >/dev/null 2>&1; then
			:
		elif resolve_realigned; then
			echo "$c" >>"$state/realigned"
		else
			if [ -z "$(g diff --name-only --diff-filter=U)" ] && g diff --cached --quiet; then
				# Nothing left of the patch on this base: keep it as an empty commit
				g commit -q --allow-empty -C "$c"
			else
				echo "$c" >>"$state/conflicted"
				sed -i "0,/^$c\$/d" "$state/todo"
				stop_help
			fi
		fi
		sed -i "0,/^$c\$/d" "$state/todo"
	done < <(cat "$state/todo")
}

# Writes the ported commits' patches, then the pin's commits.
finish() {
	local tmp i c prev name
	tmp=$(mktemp -d)
	mkdir -p "$state/out"
	rm -f "$state/out/"*
	# Commits a person added for this base only (listed by subject in
	# $state/extra, "NAME<TAB>subject"): written under NAME, e.g. 0000-...
	mapfile -t commits < <(g rev-list --reverse fork-base..HEAD | while read -r c; do
		subj=$(g log -1 --format=%s "$c")
		extra=$(awk -F '\t' -v s="$subj" '$2 == s {print $1}' "$state/extra" 2>/dev/null || true)
		if [ -n "$extra" ]; then
			"$repo/scripts/format-patches.sh" "$tree" "$tmp" "$c^..$c"
			mv "$tmp"/*.patch "$state/out/$extra"
		else
			echo "$c"
		fi
	done)
	mapfile -t names <"$state/names"
	[ ${#commits[@]} = ${#names[@]} ] || die "$tree holds ${#commits[@]} commits after fork-base, the pinned series had ${#names[@]}"
	for i in "${!commits[@]}"; do
		c=${commits[$i]} name=${names[$i]}
		prev=$(g rev-parse "$c^")
		if [ -z "$(g diff --name-only "$prev" "$c")" ]; then
			why=$(awk -v n="$name" '$1 == n {sub(/^[^ ]+ +/, ""); print}' "$state/why" 2>/dev/null || true)
			echo "drop $name  ${why:-empty on $version: upstream already has the change}" >>"$state/out/dropped"
			continue
		fi
		"$repo/scripts/format-patches.sh" "$tree" "$tmp" "$c^..$c"
		mv "$tmp"/*.patch "$state/out/$name"
	done
	rm -rf "$tmp"
	finish_pin
}

finish_pin() {
	local name conflicted=() mech=() dropped=()
	# 1. the bump commit
	go get "$module@$version" >/dev/null
	go mod tidy
	commit -m "Bump upstream to $version" -m "go.mod/go.sum only; the patches follow in their own commits." -- go.mod go.sum
	# 2. conflict-resolved patches
	mapfile -t olds < <(git -C "$pinned" rev-list --reverse fork-base..HEAD)
	# (conflicts resolved by hand, and those resolve-realigned.py resolved)
	while read -r c; do
		for i in "${!olds[@]}"; do
			[ "${olds[$i]}" = "$c" ] && conflicted+=("$(cd patches && ls ./*.patch | sed 's|^\./||' | sed -n "$((i + 1))p")")
		done
	done < <(cat "$state/conflicted" "$state/realigned" 2>/dev/null)
	for name in "${conflicted[@]}"; do
		[ -n "$name" ] && cp "$state/out/$name" "patches/$name"
	done
	if [ ${#conflicted[@]} -gt 0 ]; then
		git add patches/*.patch
		commit -m "patches: resolve the conflicts of the $version bump" \
			-m "Resolved: ${conflicted[*]}" -- patches/*.patch
	fi
	# 3. mechanical refresh
	for name in $(cd "$state/out" && ls ./*.patch 2>/dev/null | sed 's|^\./||'); do
		cmp -s "$state/out/$name" "patches/$name" || { cp "$state/out/$name" "patches/$name"; mech+=("$name"); }
	done
	if [ ${#mech[@]} -gt 0 ]; then
		git add patches/*.patch
		commit -m "patches: mechanical refresh on $version (line numbers, index lines)" -- patches/*.patch
	fi
	# 4. dropped patches
	if [ -f "$state/out/dropped" ]; then
		while read -r _ name _; do git rm -q "patches/$name"; dropped+=("$name"); done <"$state/out/dropped"
		commit -m "patches: drop what $version made empty" -m "$(cat "$state/out/dropped")" -- patches
	fi
	rm -rf "$tree"
	ASSEMBLE_3WAY=1 scripts/assemble.sh "$pinned" "$version" "${pkgs[@]}"
	scripts/check-patches.sh "$pinned"
	say "pinned $version; run 'make test' and 'make upstream-matrix'"
}

start() {
	version=$1
	[ -d "$pinned/.git" ] || die "no $pinned: run 'make src' first"
	tree=build/ollama-$version
	if [ -d "$tree/.git" ]; then
		g worktree prune
	fi
	rm -rf "$tree"
	# upstream + overlay; the series is replaced by the port below
	scripts/assemble.sh "$tree" "$version" "${pkgs[@]}" >/dev/null 2>&1 || true
	[ -d "$tree/.git" ] || die "could not materialize $version"
	g am --abort >/dev/null 2>&1 || true
	g reset -q --hard fork-base
	state=$tree/.git/bump
	mkdir -p "$state"
	echo "$version" >"$state/version"
	: >"$state/conflicted"
	g fetch -q "$repo/$pinned" fork-base HEAD
	git -C "$pinned" rev-list --reverse fork-base..HEAD >"$state/todo"
	(cd patches && ls ./*.patch | sed 's|^\./||') >"$state/names"
	[ "$(wc -l <"$state/todo")" = "$(wc -l <"$state/names")" ] ||
		die "$pinned holds $(wc -l <"$state/todo") patches, patches/ $(wc -l <"$state/names"): run 'make src' first"
	say "porting $(wc -l <"$state/todo") commits of $pinned onto $version in $tree"
	port
	finish
}

case ${1:-} in
--pin) start "${2:?usage: bump.sh --pin VERSION}" ;;
--continue)
	if [ -n "${2:-}" ]; then tree=build/ollama-$2; else
		tree=$(ls -d build/ollama-v*/.git/bump 2>/dev/null | head -1 | sed 's|/.git/bump$||')
	fi
	[ -n "$tree" ] || die "nothing to continue"
	state=$tree/.git/bump
	version=$(cat "$state/version")
	[ ! -f "$tree/.git/CHERRY_PICK_HEAD" ] || stop_help
	port
	finish
	;;
*) sed -n '2,25p' "$0" >&2; exit 2 ;;
esac
