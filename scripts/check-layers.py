#!/usr/bin/env python3
"""check-layers.py -- the layer rules of ARCHITECTURE.md ("Layers") that neither the compiler
nor the linker enforces. Run by ctest as check_layers (and check_layers_selftest: --self-test).

Usage: scripts/check-layers.py [--source DIR] [--build DIR] [--nm NM]
       scripts/check-layers.py --self-test [--cc CC] [--nm NM]

(a) Includes. Every #include "..." of every .c/.h under proto/, engine/, include/, loadgen/,
    bench/ and tests/ is resolved the way the compiler does (the including file's folder, then
    include/, engine/, proto/, loadgen/, tests/) and must obey:
      1. nothing under proto/ includes a header under engine/;
      2. a *_internal.h is included only from its own folder;
      3. engine/shard/ includes nothing from engine/wal, stream, front or campaign;
         engine/wal/ nothing from stream, front or campaign; engine/stream/ nothing from front
         or campaign; engine/ops/ nothing from front; none of them nor engine/campaign/ from
         engine/cluster/, which sees nothing of front, stream or ops; engine/relay/ nothing from
         any other engine stage (it reads the stream through librush) (each stage sees only the
         stages below it).
    Also: no test_*.c or stress_*.c at the top of tests/ (they belong in unit/, system/,
    stress/; tests/CMakeLists.txt still builds them so that nothing is lost).
(b) Call loops. From the build's object files (BUILD/CMakeFiles/<target>.dir/**/*.o, nm):
    file A depends on file B when A has an undefined symbol that B defines as text (T). Two or
    more files that reach each other (a strongly connected component) are a loop; each is
    printed with the symbols on every edge. A symbol defined by two different source files is
    ambiguous and ignored (printed).

Exit status: 0 clean, 1 a rule broken (each printed), 2 usage or no object files found.
"""
import argparse
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile

SCANNED = ("proto", "engine", "include", "loadgen", "bench", "tests")
# The -I folders, in the order every target sees them (CMakeLists.txt: rush_stage, tests).
INCLUDE_DIRS = ("include", "engine", "proto", "loadgen", "tests")
# Each stage folder and the folders it must not include from.
STAGE_FORBIDDEN = {
    "engine/shard": ("engine/wal", "engine/stream", "engine/front", "engine/campaign",
                     "engine/cluster"),
    "engine/wal": ("engine/stream", "engine/front", "engine/campaign", "engine/cluster"),
    "engine/stream": ("engine/front", "engine/campaign", "engine/cluster"),
    "engine/ops": ("engine/front", "engine/cluster"),
    "engine/campaign": ("engine/cluster", "engine/front"),
    "engine/cluster": ("engine/front", "engine/stream", "engine/ops"),
    # An outside stage: it reads the stream through librush like any consumer.
    "engine/relay": ("engine/shard", "engine/wal", "engine/stream", "engine/front",
                     "engine/campaign", "engine/ops", "engine/cluster"),
}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
NM_RE = re.compile(r"^(.*?\.o):\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z])\s+(\S+)$")


def folder_of(path):
    return os.path.dirname(path)


def under(path, folder):
    return path == folder or path.startswith(folder + "/")


def resolve(root, including, name):
    """The include's path relative to root, or None when it is not a file of the tree."""
    for base in [folder_of(including)] + list(INCLUDE_DIRS):
        candidate = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(os.path.join(root, candidate)):
            return candidate
    return None


def source_files(root):
    for top in SCANNED:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            for filename in sorted(filenames):
                if filename.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(dirpath, filename), root)


def include_rule(source, header):
    """The rule `source` including `header` breaks, or None."""
    if under(source, "proto") and under(header, "engine"):
        return "proto/ includes nothing from engine/"
    if header.endswith("_internal.h") and folder_of(header) != folder_of(source):
        return "a *_internal.h is private to its folder (%s/)" % folder_of(header)
    for stage, forbidden in STAGE_FORBIDDEN.items():
        if under(source, stage):
            for folder in forbidden:
                if under(header, folder):
                    return "%s/ sits below %s/ and includes nothing from it" % (stage, folder)
    return None


def check_includes(root):
    problems = []
    for source in source_files(root):
        with open(os.path.join(root, source), encoding="utf-8", errors="replace") as file:
            for number, line in enumerate(file, 1):
                match = INCLUDE_RE.match(line)
                header = resolve(root, source, match.group(1)) if match else None
                rule = include_rule(source, header) if header else None
                if rule is None:
                    continue
                problems.append("%s:%d: includes %s: %s" % (source, number, header, rule))
    return problems


def check_test_folders(root):
    problems = []
    tests = os.path.join(root, "tests")
    for name in sorted(os.listdir(tests)) if os.path.isdir(tests) else []:
        if re.match(r"(test|stress)_.*\.c$", name):
            home = "tests/stress/" if name.startswith("stress_") else "tests/unit/ or tests/system/"
            problems.append("tests/%s: move it into %s (git mv)" % (name, home))
    return problems


def object_files(build, source=None):
    """(object path, source path relative to the source root) of every target's objects; with
    `source`, only those whose source file still exists (a removed file's object stays behind)."""
    top = os.path.join(build, "CMakeFiles")
    found = []
    for target in sorted(os.listdir(top)) if os.path.isdir(top) else []:
        if not target.endswith(".dir"):
            continue
        base = os.path.join(top, target)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for filename in sorted(filenames):
                if filename.endswith(".o"):
                    path = os.path.join(dirpath, filename)
                    origin = os.path.relpath(path, base)[: -len(".o")]
                    if source is None or os.path.isfile(os.path.join(source, origin)):
                        found.append((path, origin))
    return found


def symbol_tables(objects, nm):
    """defined[symbol] = {source}, undefined[source] = {symbol}."""
    source_of = dict(objects)
    defined, undefined = {}, {}
    paths = [path for path, _ in objects]
    for start in range(0, len(paths), 200):
        chunk = paths[start:start + 200]
        output = subprocess.run([nm, "-A"] + chunk, check=True, capture_output=True,
                                text=True).stdout
        for line in output.splitlines():
            match = NM_RE.match(line)
            if not match or match.group(1) not in source_of:
                continue
            source, kind, symbol = source_of[match.group(1)], match.group(2), match.group(3)
            if kind == "T":
                defined.setdefault(symbol, set()).add(source)
            elif kind == "U":
                undefined.setdefault(source, set()).add(symbol)
    return defined, undefined


def file_graph(defined, undefined):
    """edges[a][b] = symbols a uses from b; and the ambiguous symbols."""
    edges, ambiguous = {}, set()
    for source, symbols in undefined.items():
        for symbol in symbols:
            owners = defined.get(symbol, set())
            if len(owners) > 1:
                ambiguous.add(symbol)
                continue
            for owner in owners:
                if owner != source:
                    edges.setdefault(source, {}).setdefault(owner, set()).add(symbol)
    return edges, ambiguous


def loops(edges):
    """The strongly connected components of more than one file (Tarjan, iterative)."""
    nodes = sorted(set(edges) | {b for targets in edges.values() for b in targets})
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges.get(child, {})))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def describe_loop(component, edges):
    lines = []
    for a in sorted(component):
        for b in sorted(edges.get(a, {})):
            if b in component:
                lines.append("    %s -> %s: %s" % (a, b, ", ".join(sorted(edges[a][b]))))
    return "\n".join(lines)


def check_calls(source, build, nm):
    objects = object_files(build, source)
    if not objects:
        return None
    defined, undefined = symbol_tables(objects, nm)
    edges, ambiguous = file_graph(defined, undefined)
    for symbol in sorted(ambiguous):
        print("note: %s is defined in %s; its calls are not followed" %
              (symbol, ", ".join(sorted(defined[symbol]))))
    problems = []
    for component in loops(edges):
        problems.append("call loop between %s:\n%s" % (", ".join(sorted(component)),
                                                       describe_loop(component, edges)))
    print("call graph: %d object files, %d files with calls to other files" %
          (len(objects), len(edges)))
    return problems


def run(source, build, nm):
    problems = check_includes(source) + check_test_folders(source)
    if build is not None:
        calls = check_calls(source, build, nm)
        if calls is None:
            print("no object files under %s/CMakeFiles: build first" % build)
            return 2, problems
        problems += calls
    for problem in problems:
        print("LAYER: " + problem)
    return (1 if problems else 0), problems


# ---- self-test: the check fails on made-up violations in a temporary copy --------------------

def write(root, path, text):
    full = os.path.join(root, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as file:
        file.write(text)


def append(root, path, text):
    with open(os.path.join(root, path), "a", encoding="utf-8") as file:
        file.write(text)


def compile_object(cc, root, build, source, text):
    write(root, source, text)
    target = os.path.join(build, "CMakeFiles", "fake.dir", source + ".o")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    subprocess.run([cc, "-c", "-o", target, os.path.join(root, source)], check=True)


def self_test(source, cc, nm):
    failures = []

    def quiet_run(tree, build):
        with contextlib.redirect_stdout(io.StringIO()):
            return run(tree, build, nm)

    def expect(label, status, problems, *needles):
        caught = status == 1 and any(all(n in p for n in needles) for p in problems)
        print("self-test %-42s %s" % (label, "caught" if caught else "MISSED"))
        if not caught:
            failures.append(label)

    with tempfile.TemporaryDirectory(prefix="rush-check-layers-") as temp:
        tree = os.path.join(temp, "src")
        for top in SCANNED:
            if os.path.isdir(os.path.join(source, top)):
                shutil.copytree(os.path.join(source, top), os.path.join(tree, top),
                                ignore=shutil.ignore_patterns("corpus"))
        cases = (
            ("proto includes an engine header", "proto/codec/sku.c", '#include "shard/shard.h"\n',
             "proto/ includes nothing from engine/"),
            ("a private header used elsewhere", "engine/stream/publisher.c",
             '#include "wal/wal_internal.h"\n', "private to its folder"),
            ("the shard includes the log", "engine/shard/table.c", '#include "wal/wal.h"\n',
             "engine/shard/ sits below engine/wal/"),
            ("the log includes the front end", "engine/wal/wal_record.c",
             '#include "front/server.h"\n', "engine/wal/ sits below engine/front/"),
            ("the stream includes a campaign", "engine/stream/stream_reader.c",
             '#include "campaign/campaign.h"\n', "engine/stream/ sits below engine/campaign/"),
        )
        for label, path, line, needle in cases:
            original = open(os.path.join(tree, path), encoding="utf-8").read()
            append(tree, path, line)
            expect(label, *quiet_run(tree, None), path + ":", needle)
            write(tree, path, original)
        write(tree, "tests/test_late.c", "int late;\n")
        expect("a test left at the top of tests/", *quiet_run(tree, None), "tests/test_late.c")
        os.remove(os.path.join(tree, "tests/test_late.c"))

        build = os.path.join(temp, "build")
        compile_object(cc, tree, build, "engine/x/a.c",
                       "int b_one(void);\nint a_one(void) { return b_one() + 1; }\n")
        compile_object(cc, tree, build, "engine/x/b.c",
                       "int c_one(void);\nint b_one(void) { return c_one(); }\n")
        compile_object(cc, tree, build, "engine/x/c.c", "int c_one(void) { return 1; }\n")
        status, problems = quiet_run(tree, build)
        if any("engine/x/" in p for p in problems):
            failures.append("a -> b -> c (no loop) was reported")
        compile_object(cc, tree, build, "engine/x/c.c",
                       "int a_one(void);\nint c_one(void) { return a_one() - 1; }\n")
        expect("a -> b -> c -> a", *quiet_run(tree, build), "engine/x/b.c -> engine/x/c.c: c_one")
        compile_object(cc, tree, build, "engine/x/c.c", "int c_one(void) { return 1; }\n")
        compile_object(cc, tree, build, "engine/shard/group.c",
                       "int applied(void);\nint joined(void) { return applied(); }\n")
        compile_object(cc, tree, build, "engine/shard/shard.c",
                       "int joined(void);\nint applied(void) { return joined(); }\n")
        status, problems = quiet_run(tree, build)
        expect("group.c <-> shard.c", status, problems, "engine/shard/group.c")
    if failures:
        print("self-test failed: " + "; ".join(failures))
        return 1
    print("self-test: every made-up violation was caught")
    return 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=os.path.dirname(here))
    parser.add_argument("--build", default=None, help="default: SOURCE/build")
    parser.add_argument("--nm", default="nm")
    parser.add_argument("--cc", default="cc")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        return self_test(args.source, args.cc, args.nm)
    build = args.build or os.path.join(args.source, "build")
    status, _ = run(args.source, build, args.nm)
    print("layers: " + ("clean" if status == 0 else "BROKEN" if status == 1 else "not checked"))
    return status


if __name__ == "__main__":
    sys.exit(main())
