#!/usr/bin/env python3
"""Module import cycles of a Rust crate: nodes are module files, edges are `crate::a::b`
paths (and `super::`) that name another module file. Prints the strongly connected
components with more than one module, at file level and at top-level-module level."""
import os, re, sys
from collections import defaultdict

def modules(src):
    mods = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith('.rs'):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)[:-3].split(os.sep)
            if rel[-1] in ('mod', 'lib', 'main'):
                rel = rel[:-1]
            mods[tuple(rel)] = path
    return mods

def resolve(mods, parts):
    # longest prefix that is a module file
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in mods:
            return tuple(parts[:n])
    return None

def scc(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)
    def strong(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            out.append(comp)
    for v in nodes:
        if v not in index:
            strong(v)
    return [c for c in out if len(c) > 1]

def main(src, crate_names):
    """Prints the cycles; returns how many there are."""
    mods = modules(src)
    edges = defaultdict(set)
    pat = re.compile(r'\b(crate|super|' + '|'.join(crate_names) + r')((?:::[a-z_][a-z0-9_]*)+)')
    for mod, path in mods.items():
        text = open(path).read()
        text = re.split(r'#\[cfg\(test\)\]\s*mod tests', text)[0]
        text = re.sub(r'//[^\n]*', '', text)
        # expand `use crate::x::{a, b}` groups
        for m in re.finditer(r'use\s+(crate|super)::([a-z_0-9:]*)\{([^}]*)\}', text):
            for item in m.group(3).split(','):
                item = item.strip().split(' ')[0]
                if item and item != 'self':
                    text += f"\n{m.group(1)}::{m.group(2)}{item}"
        for m in pat.finditer(text):
            root, rest = m.group(1), m.group(2).strip(':').split('::')
            if root == 'super':
                is_dir = os.path.basename(path) == 'mod.rs'
                base = list(mod) if is_dir else list(mod[:-1])
                parts = base[:-1] + rest if is_dir else base + rest
                if not is_dir: parts = list(mod[:-1]) + rest
                else: parts = list(mod[:-1]) + rest
            else:
                parts = rest
            target = resolve(mods, parts)
            if target is not None and target != mod and not (target == mod[:len(target)]):
                edges[mod].add(target)
    comps = scc(list(mods), edges)
    print(f"modules: {len(mods)}")
    print(f"file-level cycles: {len(comps)}")
    for c in comps:
        print("  " + " <-> ".join('::'.join(m) or 'crate' for m in sorted(c)))
    top = defaultdict(set)
    for a, bs in edges.items():
        for b in bs:
            if a[:1] != b[:1]:
                top[a[:1]].add(b[:1])
    tcomps = scc(list({m[:1] for m in mods}), top)
    print(f"top-level-module cycles: {len(tcomps)}")
    for c in tcomps:
        print("  " + " <-> ".join('::'.join(m) or 'crate' for m in sorted(c)))
    return len(comps) + len(tcomps)

if __name__ == '__main__':
    # tools/modcycles.py SRC_DIR [CRATE_NAME ...]; exits 1 when there is a cycle.
    sys.exit(1 if main(sys.argv[1], sys.argv[2:]) else 0)
