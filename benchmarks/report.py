"""Ratios, targets and the Markdown tables of one benchmark run.

Absolute figures depend on the machine and on whatever else runs on it; ratios of
figures taken in the same run do much less. :func:`compute_ratios` derives them from a
result document, :func:`check_targets` compares them with the issue's targets, and
:func:`markdown` renders the tables printed on stdout.

>>> ratios = compute_ratios({"e2e": {"every_frame": {"analysed_fps": 36.0}, "default_rate":
...     {"realtime_factor": 6.0}}, "stages": {"stage_limit_fps": 40.0},
...     "naive": {"fps": 12.0}, "live": {"p99_ms": 90.0, "batch_infer_ms": 45.0}})
>>> ratios["e2e_over_stage_limit"], ratios["speedup_over_naive"]
(0.9, 3.0)
"""

from __future__ import annotations

from typing import Any

from . import coarse, shared_backbone

#: The issues' targets on a 2-core CPU, 720p H.264: (ratio key, comparison, bound). The
#: default ``segment`` (coarse to fine, issue 32): 40x real time and 0.8 of decoding alone.
TARGETS = (
    ("e2e_over_stage_limit", ">=", 0.9),
    ("speedup_over_naive", ">=", 3.0),
    ("realtime_factor_default", ">=", 40.0),
    ("default_over_decode", ">=", 0.8),
    ("live_p99_over_batch_infer", "<", 3.0),
)

_WHAT = {
    "e2e_over_stage_limit": "end-to-end fps (every frame) / stage limit",
    "speedup_over_naive": "end-to-end fps (every frame) / naive baseline fps",
    "realtime_factor_default": "video s per wall s, default `segment` (coarse to fine)",
    "default_over_decode": "video frames/s, default `segment` / decode alone",
    "live_p99_over_batch_infer": "live 30 fps: p99 latency / one batch's inference",
}


def _ratio(num: float | None, den: float | None) -> float | None:
    return round(num / den, 3) if num and den else None


def compute_ratios(doc: dict[str, Any]) -> dict[str, float | None]:
    """The ratios of one run (``None`` where a part was skipped)."""
    every = doc.get("e2e", {}).get("every_frame") or {}
    default = doc.get("e2e", {}).get("default_rate") or {}
    naive = doc.get("naive") or {}
    live = doc.get("live") or {}
    rtf = default.get("realtime_factor")
    dense = doc.get("e2e", {}).get("default_rate_dense") or {}
    decode_fps = (doc.get("stages", {}).get("decode") or {}).get("fps")
    return {
        "e2e_over_stage_limit": _ratio(every.get("analysed_fps"),
                                       doc.get("stages", {}).get("stage_limit_fps")),
        "speedup_over_naive": _ratio(every.get("analysed_fps"), naive.get("fps")),
        "realtime_factor_default": round(rtf, 3) if rtf else None,
        "realtime_factor_default_dense": dense.get("realtime_factor"),
        "default_over_decode": _ratio(default.get("video_fps"), decode_fps),
        "default_dense_over_decode": _ratio(dense.get("video_fps"), decode_fps),
        "live_p99_over_batch_infer": _ratio(live.get("p99_ms"), live.get("batch_infer_ms")),
    }


def check_targets(ratios: dict[str, float | None]) -> dict[str, dict[str, Any]]:
    """Each target with its value and whether it was met (``None``: not measured)."""
    out = {}
    for key, op, bound in TARGETS:
        value = ratios.get(key)
        met = None if value is None else (value >= bound if op == ">=" else value < bound)
        out[key] = {"value": value, "target": f"{op} {bound:g}", "met": met}
    return out


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _signed(mb: float | None) -> str:
    """``+1.2 MB`` / ``-0.4 MB``; ``–`` for a run too short to tell."""
    return "–" if mb is None else f"{mb:+.1f} MB"


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.0f}"


def markdown(doc: dict[str, Any]) -> str:
    """The stdout report: inputs, stage table, live table, ratios against targets."""
    m, inp, st, e2e = doc["machine"], doc["inputs"], doc["stages"], doc["e2e"]
    video, model = inp["video"], inp["model"]
    lines = [
        f"## endostream benchmark{' (--quick)' if doc.get('quick') else ''}",
        "",
        f"- machine: {m['cpu_model']}, {m['cores_usable']} usable cores, "
        f"onnxruntime {m['libraries'].get('onnxruntime-gpu') or m['libraries'].get('onnxruntime')}"
        f", provider **{model['provider']}**, load average {m.get('loadavg_start')} → "
        f"{m.get('loadavg_end')}",
        f"- video: {video['path']} ({video['origin']}; {video['width']}x{video['height']} "
        f"{_f(video['fps'], 2)} fps, {video['frames']} frames, {_f(video['duration_s'])} s)",
        f"- model: {model['path']} ({model['origin']}; heads "
        f"{', '.join(f'{h} {len(v)}' for h, v in model['heads'].items())}; "
        f"{_f(model['threads'], 0)} threads)",
    ]
    noise = doc.get("noise") or {}
    others, steal = noise.get("cpu_share_others") or {}, noise.get("cpu_share_steal") or {}
    if noise.get("repeat"):
        lines.append(f"- stages and end-to-end: fastest of {noise['repeat']} interleaved "
                     "round(s) each")
    if others:
        shares = ", ".join(f"{k} {_pct(v)} ({_pct(steal.get(k))})" for k, v in others.items())
        lines.append("- CPU taken by others meanwhile, % of all cores (of which hypervisor "
                     f"steal): {shares}")
    lines += [
        "",
        "| stage | frames | ms/frame | frames/s |",
        "|---|---:|---:|---:|",
    ]
    for key, name in (("decode", "decode alone"),
                      ("decode_preprocess", "decode + RGB + crop + resize (every frame)")):
        s = st[key]
        lines.append(f"| {name} | {s['frames']} | {_f(s['ms_per_frame'], 2)} | {_f(s['fps'])} |")
    pre_ms = st["preprocess_ms_per_frame"]
    lines.append(f"| preprocess alone (difference) | | {_f(pre_ms, 2)} | "
                 f"{_f(1000 / pre_ms if pre_ms else None)} |")
    for b in st["inference"]:
        lines.append(f"| inference, both heads, batch {b['batch']} ({b['runs']} runs, "
                     f"{_f(b['ms_median'])} ms/batch) | {b['batch'] * b['runs']} | "
                     f"{_f(b['ms_per_frame'], 2)} | {_f(b['fps'])} |")
    how = st.get("stage_limit_model", "sum")
    lines.append(f"| **stage limit** ({how.split()[0]} of decode, preprocess, inference at batch "
                 f"{st['stage_limit_batch']}) | | {_f(st['stage_limit_ms_per_frame'], 2)} | "
                 f"**{_f(st['stage_limit_fps'])}** |")
    for key, name in (("every_frame", "**end-to-end, every frame**"),
                      ("default_rate_dense", "end-to-end, `--dense`, sample"),
                      ("default_rate", "**end-to-end, default (coarse to fine)**, sample")):
        r = e2e.get(key)
        if not r:
            continue
        label = name if key == "every_frame" else f"{name} {_f(r['sample_fps'], 0)} fps " \
            f"({r['frames_decoded']} decoded, {_f(r.get('inferences_per_video_s'), 2)} " \
            f"inferences per video s, {_f(r['realtime_factor'])}x real time)"
        ms = 1000 / r["analysed_fps"] if r["analysed_fps"] else None
        lines.append(f"| {label} | {r['frames_analysed']} | {_f(ms, 2)} | "
                     f"**{_f(r['analysed_fps'])}** |")
    naive = doc.get("naive")
    if naive:
        lines.append(f"| naive baseline (OpenCV + 2x PyTorch eager, batch 1, "
                     f"{naive['torch_threads']} threads) | {naive['frames']} | "
                     f"{_f(1000 / naive['fps'] if naive['fps'] else None, 2)} | "
                     f"{_f(naive['fps'])} |")
    else:
        lines.append("| naive baseline | skipped | | |")
    live = doc.get("live") or {}
    if live.get("rates"):
        lines += ["", "| live source | seconds | analysed fps | p50 ms | p90 ms | p99 ms | max ms "
                  "| dropped | mean batch | batch infer ms | p99 / batch | RSS MB start→end "
                  "(second half) |", "|---" + "|---:" * 11 + "|"]
        for r in live["rates"]:
            lines.append(
                f"| {r['source_fps']:g} fps | {_f(r['seconds'])} | {_f(r['analysed_fps'])} | "
                f"{_f(r['p50_ms'])} | {_f(r['p90_ms'])} | {_f(r['p99_ms'])} | {_f(r['max_ms'])} | "
                f"{r['dropped']} | {_f(r['mean_batch_size'], 2)} | {_f(r['batch_infer_ms'])} | "
                f"{_f(r['p99_over_batch_infer'], 2)} | {_f(r['rss_start_mb'], 0)}→"
                f"{_f(r['rss_end_mb'], 0)} ({_signed(r.get('rss_second_half_mb'))}) |")
    lines += ["", "| ratio (one run) | value | target | met |", "|---|---:|---|---|"]
    for key, t in doc["targets"].items():
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| {_WHAT[key]} (`{key}`) | {_f(t['value'], 2)} | {t['target']} | {met} |")
    ratios = doc.get("ratios") or {}
    if ratios.get("realtime_factor_default_dense") is not None:
        lines.append(f"\n`--dense` beside it: {_f(ratios['realtime_factor_default_dense'])}x "
                     f"real time, {_f(ratios.get('default_dense_over_decode'), 2)} of decode "
                     "alone (video frames/s)")
    if doc.get("coarse"):
        lines += coarse.markdown(doc["coarse"])
    if doc.get("shared"):
        lines += shared_backbone.markdown(doc["shared"])
    for warning in doc.get("warnings", []):
        lines += ["", f"> {warning}"]
    return "\n".join(lines) + "\n"
