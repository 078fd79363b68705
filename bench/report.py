"""The benchmark's verdicts and tables: each issue target against its measured value, and one table per
section of bench/run.py's results (printed, and the same dicts go to the JSON)."""

from __future__ import annotations

from benchlib import table

TARGETS = dict(geometry_speedup=20.0, tracking_overhead=1.01, ours_vs_peft=1.05, closed_vs_gemm=1.3)


def targets(results: dict) -> list[dict]:
    """Each target of the issue with its measured value and whether it is met (None: not measured)."""
    out = []
    geo = {(r["method"], r["size"], r["rank"]): r for r in results.get("geometry", [])}
    for method in ("lora", "dora", "delora"):
        row = geo.get((method, 4096, 16))
        value = row["speedup"] if row else None
        out.append(
            dict(
                name=f"geometry speed-up {method} 4096 r=16",
                value=value,
                target=f">= {TARGETS['geometry_speedup']:g}x",
                met=None if value is None else value >= TARGETS["geometry_speedup"],
            )
        )
    if geo:
        worst = max(r["closed_peak_bytes"] / r["matrix_bytes"] for r in geo.values())
        out.append(
            dict(
                name="closed form never allocates an out x in tensor (max peak / matrix bytes)",
                value=worst,
                target="< 1",
                met=worst < 1,
            )
        )
    for row in results.get("tracking", []):
        lo, hi = row["overhead_ratio_ci95"]
        out.append(
            dict(
                name=f"tracking overhead {row['method']} ({row['layers']} layers, every step)",
                value=row["overhead_direct"],
                target=f"<= {TARGETS['tracking_overhead']:g}",
                met=row["overhead_direct"] <= TARGETS["tracking_overhead"],
                ab_ratio=row["overhead_ratio"],
                ab_ci95=[lo, hi],
                ab_consistent=lo <= row["overhead_direct"] <= hi,
            )
        )
    gemm = results.get("scaling", {}).get("closed_vs_gemm")
    if gemm:
        out.append(
            dict(
                name=f"Tracker.step / its W @ V GEMM ({gemm['width']}^2, r={gemm['rank']})",
                value=gemm["ratio"],
                target=f"<= ~{TARGETS['closed_vs_gemm']:g}",
                met=gemm["ratio"] <= TARGETS["closed_vs_gemm"],
            )
        )
    for row in results.get("layer", []):
        if row["level"] == "model":
            out.append(
                dict(
                    name="ours / PEFT DeLoRA forward+backward (model)",
                    value=row["ratio"],
                    target=f"<= {TARGETS['ours_vs_peft']:g}",
                    met=row["ratio"] <= TARGETS["ours_vs_peft"],
                )
            )
    return out


def report(results: dict, log) -> None:
    if results.get("geometry"):
        log(
            "\nGeometry: closed form vs dense (median ms; speed-up = "
            "median of per-round dense / closed; peak extra memory)"
        )
        log(
            table(
                results["geometry"],
                [
                    ("method", "method", "s"),
                    ("m=n", "size", "d"),
                    ("r", "rank", "d"),
                    ("closed ms", "closed_ms", ".2f"),
                    ("dense ms", "dense_ms", ".1f"),
                    ("speed-up", "speedup", ".1f"),
                    ("closed peak", "closed_peak_bytes", "bytes"),
                    ("dense peak", "dense_peak_bytes", "bytes"),
                    ("m x n fp32", "matrix_bytes", "bytes"),
                    ("err closed", "err_closed", ".0e"),
                    ("err dense", "err_dense", ".0e"),
                ],
            )
        )
    if results.get("geometry_breakdown"):
        log("\nWhere the time goes (DeLoRA, 4096 x 4096, r = 16; each part timed interleaved with the others)")
        log(table(results["geometry_breakdown"], [("part", "part", "s"), ("ms", "ms", ".2f")]))
    if results.get("tracking"):
        log(
            "\nTracking overhead on real training steps (A/B ratio = "
            "median of per-round tracked / plain, with its 95% CI; "
            "share = Tracker.step alone / plain step; the target uses 1 + share)"
        )
        log(
            table(
                [dict(r, ci_s="{:.3f}-{:.3f}".format(*r["overhead_ratio_ci95"])) for r in results["tracking"]],
                [
                    ("method", "method", "s"),
                    ("layers", "layers", "d"),
                    ("plain ms", "plain_step_ms", ".1f"),
                    ("tracked ms", "tracked_step_ms", ".1f"),
                    ("ratio", "overhead_ratio", ".3f"),
                    ("95% CI", "ci_s", "s"),
                    ("of medians", "overhead_ratio_of_medians", ".3f"),
                    ("Tracker.step ms", "tracker_step_ms", ".2f"),
                    ("share", "direct_share", ".3%"),
                    ("ms/layer", "tracker_ms_per_layer", ".3f"),
                    ("W @ V alone ms", "gemm_ms", ".2f"),
                    ("its share", "gemm_share", ".3%"),
                ],
            )
        )
    if results.get("layer"):
        log("\nOur DeLoRALinear vs PEFT's DeloraLinear, forward + backward (ours / PEFT)")
        rows = [dict(r, ci_s="{:.3f}-{:.3f}".format(*r["ratio_ci95"])) for r in results["layer"]]
        log(
            table(
                rows,
                [
                    ("level", "level", "s"),
                    ("ours ms", "ours_ms", ".3f"),
                    ("PEFT ms", "peft_ms", ".3f"),
                    ("ratio", "ratio", ".3f"),
                    ("95% CI", "ci_s", "s"),
                    ("of medians", "ratio_of_medians", ".3f"),
                ],
            )
        )
    if results.get("app"):
        a = results["app"]
        log(
            f"\nApp default comparison ({', '.join(a['methods'])}; "
            f"{a['steps']} steps each; {a['model']} on {a['device']}):"
        )
        log(
            f"  import {a['import_s']:.1f} s (not counted) | prepare "
            f"{a['prepare_s']:.1f} s | first live point {a['first_point_s']:.1f} s "
            f"| end {a['end_s']:.1f} s | {a['steps_per_s_all_methods']:.2f} steps/s over all methods"
        )
    if results.get("scaling"):
        s = results["scaling"]
        log(f"\nTracker cost scaling (DeLoRA r={s['rank']}, {s['dtype']}; Tracker.step ms)")
        log(
            table(
                s["by_layers"] + s["by_width"],
                [
                    ("layers", "layers", "d"),
                    ("m=n", "width", "d"),
                    ("Tracker.step ms", "tracker_ms", ".2f"),
                    ("ms/layer", "ms_per_layer", ".3f"),
                ],
            )
        )
        f, e = s["fit"], s["llama_8b"]
        log(
            f"  fit: {f['per_record_ms']:.2f} ms per record + per layer "
            f"{f['per_layer_ms']:.3f} ms + {f['per_million_weights_ms']:.3f} ms per 1e6 weights"
        )
        for c in s["checks"]:
            log(
                f"  check {c['layers']} x {c['out']}x{c['inp']}: measured "
                f"{c['tracker_ms']:.2f} ms, predicted {c['predicted_ms']:.2f} ms"
            )
        if s.get("closed_vs_gemm"):
            c = s["closed_vs_gemm"]
            log(
                f"  closed form vs its GEMM at {c['width']}x{c['width']}, r={c['rank']}: Tracker.step "
                f"{c['tracker_ms']:.2f} ms / W @ V {c['gemm_ms']:.2f} ms = {c['ratio']:.2f} "
                f"(95% CI {c['ratio_ci95'][0]:.2f}-{c['ratio_ci95'][1]:.2f})"
            )
        log(
            f"  Llama-8B extrapolation: all {e['all_linear_modules']} "
            f"linear modules {e['all_linear_ms'] / 1e3:.2f} s per record; "
            f"q+v ({e['q_v_modules']}) {e['q_v_ms'] / 1e3:.2f} s per record"
        )
    if results.get("targets"):
        log("\nTargets")
        rows = [
            dict(
                t,
                value_s="-" if t["value"] is None else f"{t['value']:.3f}",
                met_s={True: "MET", False: "MISSED", None: "not measured"}[t["met"]],
            )
            for t in results["targets"]
        ]
        log(
            table(
                rows,
                [("target", "name", "s"), ("measured", "value_s", "s"), ("goal", "target", "s"), ("", "met_s", "s")],
            )
        )
