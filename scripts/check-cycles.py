#!/usr/bin/env python3
"""No file imports a file that imports it back.

For every crate of the workspace, builds the graph of which source file
refers to which (`use crate::…`, `use super::…`, `crate::a::b` paths, and a
parent module's `child::…` paths; comments and `#[cfg(test)]` code are not
counted), and prints every strongly connected component of more than one
file. Exit status 1 if there is any. Run by scripts/test.sh; see
docs/architecture.md for which way dependencies point in each crate.
"""
import os, re, sys
from collections import defaultdict
root = sys.argv[1] if len(sys.argv) > 1 else '.'
crates = [d for d in ['proxy','control-plane','api','cli','testapp','tests/support','tests/cluster'] if os.path.isdir(os.path.join(root,d,'src'))]
tot = 0
for c in crates:
    src = os.path.join(root, c, 'src')
    mods = {}  # module path tuple -> file
    for dp, _, fs in os.walk(src):
        for f in fs:
            if not f.endswith('.rs'): continue
            p = os.path.relpath(os.path.join(dp, f), src)
            parts = p[:-3].split(os.sep)
            if parts[-1] == 'mod': parts = parts[:-1]
            if parts in (['lib'], ['main']): parts = []
            if parts and parts[0] == 'bin': continue
            if p == 'main.rs' and os.path.exists(os.path.join(src, 'lib.rs')): continue
            if parts and parts[-1] == 'tests': continue
            mods[tuple(parts)] = p
    def resolve(path):
        path = tuple(path)
        while path and path not in mods: path = path[:-1]
        return path if path in mods else None
    edges = defaultdict(set)
    for m, f in mods.items():
        text = open(os.path.join(src, f)).read()
        # strip test modules
        text = re.split(r'#\[cfg\(test\)\]', text)[0]
        text = re.sub(r'//[^\n]*', '', text)
        refs = []
        for u in re.finditer(r'\buse\s+(crate|super|self)::([^;]+);', text, re.S):
            base, rest = u.group(1), u.group(2)
            rest = re.sub(r'\s+', '', rest)
            def expand(prefix, s):
                out = []
                if '{' in s:
                    i = s.index('{'); head = s[:i].rstrip(':'); inner = s[i+1:s.rindex('}')]
                    depth=0; cur=''; items=[]
                    for ch in inner:
                        if ch=='{': depth+=1
                        if ch=='}': depth-=1
                        if ch==',' and depth==0: items.append(cur); cur=''
                        else: cur+=ch
                    if cur: items.append(cur)
                    pre = prefix + ([x for x in head.split('::') if x])
                    for it in items: out += expand(pre, it)
                else:
                    out.append(prefix + [x for x in s.split('::') if x])
                return out
            for p in expand([], rest):
                refs.append((base, p))
        for r in re.finditer(r'\b(crate)::((?:[a-z_0-9]+::)*[A-Za-z_0-9]+)', text):
            refs.append(('crate', r.group(2).split('::')))
        isdir = f.endswith('mod.rs') or f in ('lib.rs','main.rs')
        if isdir:
            kids = {k[-1] for k in mods if len(k) == len(m) + 1 and k[:len(m)] == m}
            body = re.sub(r'\b(pub(\([a-z]+\))?\s+)?mod\s+[a-z_0-9]+\s*;', '', text)
            for r in re.finditer(r'(?<![:\w])([a-z_0-9]+)::((?:[a-z_0-9]+::)*[A-Za-z_0-9]+)', body):
                if r.group(1) in kids:
                    refs.append(('self', [r.group(1)] + r.group(2).split('::')))
        for base, p in refs:
            if base == 'crate': full = p
            elif base == 'super':
                cur = list(m) if isdir else list(m[:-1])
                # super relative to module m: parent of m
                parent = list(m[:-1])
                full = parent + p
            else:
                full = list(m) + p
            t = resolve(full)
            if t is not None and t != m:
                edges[m].add(t)
    # tarjan SCC
    index = {}; low = {}; st = []; on = set(); sccs = []; i = [0]
    sys.setrecursionlimit(10000)
    def sc(v):
        index[v] = low[v] = i[0]; i[0] += 1; st.append(v); on.add(v)
        for w in edges[v]:
            if w not in index: sc(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = st.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: sccs.append(comp)
    for v in list(mods): 
        if v not in index: sc(v)
    for comp in sccs:
        tot += 1
        print(f'{c}: cycle among', sorted('::'.join(x) or '<root>' for x in comp))
        for a in comp:
            for b in edges[a]:
                if b in comp: print('   ', '::'.join(a) or '<root>', '->', '::'.join(b) or '<root>')
print('cycles:', tot)
sys.exit(1 if tot else 0)
