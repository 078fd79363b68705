"""Execute the tutorials in full mode and store their outputs, stamped, in the committed .ipynb files.

    python notebooks/execute.py                  # every notebook whose stamp is missing or stale
    python notebooks/execute.py 01 03_lora       # only these (a number or the start of a name)
    python notebooks/execute.py --force          # run even those whose stamp still matches
    python notebooks/execute.py --fast --out /tmp/nb   # a quick check of the pipeline (DELORA_VIZ_FAST=1)

Each NN_name.py (jupytext percent format) is the source: it is read, executed top to bottom with nbclient
in a kernel started in notebooks/ (as Jupyter does), and the result, outputs included, is written to
NN_name.ipynb. The .ipynb's metadata gets a stamp (`metadata["delora_viz"]["execution"]`) holding the
sha256 of the code cells' sources (`code_hash`, the same function tests/test_notebooks.py uses), the
delora_viz version, the date, the seconds it took, the mode (`full` or `fast`) and the machine. The test
fails when a .py's code changed after its outputs were made: run this script again then. Prose edits need
no re-run: `jupytext --sync notebooks/NN_name.py` carries the new markdown into the .ipynb and keeps the
outputs of unchanged code cells (and the stamp, since the code hash is unchanged).

Notebooks run one after the other (they each use both cores). A notebook whose stamp already matches its
code and the package version is skipped unless --force, so an interrupted run resumes where it stopped.
A failing cell stops that notebook: its .ipynb is left untouched, the error is printed, and the script
goes on with the next one and exits with status 1 at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PATTERN = "[0-9][0-9]_*.py"  # 00_..., 01_..., 99_appendix_internals
STAMP_KEY = "delora_viz"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CELL_TIMEOUT = 1800  # seconds per cell: full mode trains real models on a CPU
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MPLBACKEND": "Agg",
    "TOKENIZERS_PARALLELISM": "false",
}


def code_sources(nb) -> list[str]:
    """The code cells' sources, stripped: what the outputs depend on (markdown and cell tags do not count)."""
    return [cell.source.strip() for cell in nb.cells if cell.cell_type == "code"]


def code_hash(nb) -> str:
    """sha256 of the code cells' sources, each stripped, as a JSON list (so cell boundaries count)."""
    text = json.dumps(code_sources(nb), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def package_version() -> str:
    sys.path.insert(0, str(ROOT))  # this checkout's delora_viz, as in the kernel
    import delora_viz

    return delora_viz.__version__


def stamp_of(nb) -> dict | None:
    """The execution stamp of a notebook, or None when it was never executed by this script."""
    return nb.metadata.get(STAMP_KEY, {}).get("execution")


def find(names: list[str]) -> list[Path]:
    """The notebooks' .py sources, in order; `names` picks some by number or by the start of their name."""
    scripts = sorted(p for p in HERE.glob(PATTERN) if p.name != Path(__file__).name)
    if not names:
        return scripts
    picked = []
    for name in names:
        stem = Path(name).stem
        hits = [p for p in scripts if p.stem == stem or p.stem.startswith(stem)]
        if len(hits) != 1:
            raise SystemExit(f"execute.py: error: {name!r} names {len(hits)} notebooks of {[p.stem for p in scripts]}")
        picked += [p for p in hits if p not in picked]
    return picked


def is_current(ipynb: Path, source_nb, version: str) -> bool:
    """True when `ipynb` holds a full-mode run of exactly this code under this package version."""
    import nbformat

    if not ipynb.exists():
        return False
    stamp = stamp_of(nbformat.read(ipynb, as_version=4))
    return (
        bool(stamp)
        and stamp.get("mode") == "full"
        and stamp.get("code_hash") == code_hash(source_nb)
        and (stamp.get("delora_viz_version") == version)
    )


def execute(script: Path, out: Path, fast: bool, version: str) -> float:
    """Run one notebook from its .py source and write it, with outputs and stamp, to `out`. Returns seconds."""
    import jupytext
    import nbclient
    import nbformat
    from jupytext.combine import combine_inputs_with_outputs

    nb = jupytext.read(script)  # cells, tags and the jupytext/kernelspec metadata of the pair
    committed = HERE / f"{script.stem}.ipynb"
    if committed.exists():  # keep its cell ids (and metadata), as `jupytext --sync` does: smaller diffs
        nb = combine_inputs_with_outputs(nb, nbformat.read(committed, as_version=4), fmt="py:percent")
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    env = dict(ENV)
    if fast:
        env["DELORA_VIZ_FAST"] = "1"
    saved = {key: os.environ.get(key) for key in [*env, "DELORA_VIZ_FAST", "PYTHONPATH"]}
    os.environ.pop("DELORA_VIZ_FAST", None)  # full mode means: not set at all
    os.environ.update(env)
    # the kernel imports delora_viz from this checkout, whatever is pip-installed
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), saved["PYTHONPATH"]]))
    try:
        start = time.perf_counter()
        client = nbclient.NotebookClient(
            nb,
            kernel_name="python3",
            timeout=CELL_TIMEOUT,
            resources={"metadata": {"path": str(HERE)}},  # the kernel's cwd: notebooks/, as in Jupyter
        )
        client.execute()  # raises CellExecutionError naming the cell
        seconds = time.perf_counter() - start
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    # A slider's output is a widget view: without a live kernel it shows as "HBox(children=...)" text or an
    # error, so only the image drawn at the default values (and the small multiples) is kept.
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [out for out in cell.outputs if WIDGET_VIEW not in out.get("data", {})]
    nb.metadata[STAMP_KEY] = {
        "execution": {
            "code_hash": code_hash(nb),
            "delora_viz_version": version,
            "mode": "fast" if fast else "full",
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
        }
    }
    nbformat.validate(nb)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(out)  # never a half-written notebook
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (number or name start); default: all")
    parser.add_argument("--force", action="store_true", help="run even notebooks whose stamp matches their code")
    parser.add_argument(
        "--fast", action="store_true", help="DELORA_VIZ_FAST=1, stamped 'fast' (the tests reject it in commits)"
    )
    parser.add_argument("--out", help="write the .ipynb files into this folder instead of notebooks/")
    args = parser.parse_args(argv)
    import jupytext

    version = package_version()
    out_dir = Path(args.out).resolve() if args.out else HERE
    failed, times = [], []
    for script in find(args.names):
        out = out_dir / f"{script.stem}.ipynb"
        if not args.force and not args.fast and is_current(out, jupytext.read(script), version):
            print(f"{script.stem}: stamp matches its code and delora_viz {version}, skipped (--force runs it)")
            continue
        print(f"{script.stem}: running ({'fast' if args.fast else 'full'} mode) ...", flush=True)
        try:
            seconds = execute(script, out, args.fast, version)
        except Exception as err:  # a failing cell: report it and go on with the next notebook
            failed.append(script.stem)
            print(f"{script.stem}: FAILED, {out.name} left as it was:\n{err}", flush=True)
            continue
        times.append((script.stem, seconds))
        print(f"{script.stem}: {seconds:.1f} s ({seconds / 60:.1f} min), written to {out}", flush=True)
    for stem, seconds in times:
        print(f"  {stem:<32} {seconds:8.1f} s")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
