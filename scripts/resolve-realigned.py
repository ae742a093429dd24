#!/usr/bin/env python3
"""Resolves cherry-pick conflicts that are only gofmt realignment, or only
lines the patch inserts at the edge of a block upstream changed.

A Go map or struct literal block that upstream realigned (a longer key added)
conflicts with a patch that changed one entry of the old alignment, though
the two changes touch different entries. For each diff3 conflict hunk in the
files given, where every line that differs is a keyed entry ("KEY": value or
Key: value), this takes upstream's side ("ours") and carries over the
entries the patch changed, added or removed relative to the base, then runs
gofmt. A hunk where the patch only inserted lines before or after the base
lines gets upstream's side with those lines inserted at the same edge. A hunk
with any other difference is left as it is for a person.

usage: resolve-realigned.py FILE...   (exit 0: all resolved; 1: some left)
"""
import re
import subprocess
import sys

KEY = re.compile(r'^\s*("[^"]+"|[A-Za-z_][A-Za-z0-9_]*)\s*:\s')


def norm(line):
    return re.sub(r'\s+', ' ', line.strip())


def key(line):
    m = KEY.match(line)
    return m.group(1) if m else None


def edge_insert(ours, base, theirs):
    """The patch only inserted lines at the start or end of the hunk: keep
    upstream's side and insert them there."""
    n = len(theirs) - len(base)
    if n <= 0:
        return None
    if theirs[n:] == base:
        return theirs[:n] + ours
    if theirs[:len(base)] == base:
        return ours + theirs[len(base):]
    return None


def resolve(ours, base, theirs):
    r = edge_insert(ours, base, theirs)
    if r is not None:
        return r

    def keyed(lines):
        return {key(l): l for l in lines if key(l)}

    def plain(lines):
        return [norm(l) for l in lines if not key(l)]

    if plain(base) != plain(theirs):
        return None  # the patch changed something that is not an entry
    o, b, t = keyed(ours), keyed(base), keyed(theirs)
    out = []
    for line in ours:
        k = key(line)
        if k is None:
            out.append(line)
        elif k in b and k not in t:
            continue  # the patch removed it
        elif k in t and k in b and norm(t[k]) != norm(b[k]):
            out.append(t[k])  # the patch changed it
        else:
            out.append(line)
    prev = None
    for line in theirs:
        k = key(line)
        if k is None:
            continue
        if k not in b and k not in o:  # the patch added it
            at = len(out)
            if prev is not None:
                for i, l in enumerate(out):
                    if key(l) == prev:
                        at = i + 1
            out.insert(at, line)
        prev = k
    return out


def main(files):
    left = 0
    for f in files:
        text = open(f).read().split('\n')
        out, i = [], 0
        while i < len(text):
            if not text[i].startswith('<<<<<<< '):
                out.append(text[i])
                i += 1
                continue
            j = i + 1
            parts, cur = {}, 'ours'
            parts[cur] = []
            while not text[j].startswith('>>>>>>> '):
                if text[j].startswith('||||||| '):
                    cur = 'base'
                    parts[cur] = []
                elif text[j] == '=======':
                    cur = 'theirs'
                    parts[cur] = []
                else:
                    parts[cur].append(text[j])
                j += 1
            r = resolve(parts['ours'], parts.get('base'), parts['theirs']) if 'base' in parts else None
            if r is None:
                out.extend(text[i:j + 1])
                left += 1
            else:
                out.extend(r)
            i = j + 1
        open(f, 'w').write('\n'.join(out))
        if '<<<<<<< ' not in '\n'.join(out):
            subprocess.run(['gofmt', '-w', f], check=True)
    print(f'resolve-realigned: {left} conflict hunks left for a person', file=sys.stderr)
    return 1 if left else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
