"""The review report: one self-contained HTML page, or the timeline picture alone.

The page holds the timeline, a table of sections (label, start, end, duration, share of
good frames, confidence) each with a thumbnail, the source and model facts and, when the
video can be reached from the report's folder, an HTML5 player with the WebVTT chapter
track; clicking a row (or a place on the timeline) seeks the player. Everything is inline
(styles, script, pictures as ``data:`` URIs): no network, one file to share. It is built
from a Jinja2 template with autoescaping, so labels and paths are text, never markup.
Nothing from the container's metadata is read.

>>> write_report(procedure, "report.html", frames=table)  # doctest: +SKIP
PosixPath('report.html')
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from endostream import __version__
from endostream.errors import UsageError
from endostream.evaluation.plots import INSTALL_HINT
from endostream.output.atomic import write_bytes_atomic, write_text_atomic
from endostream.output.names import percent_encode
from endostream.output.palette import display_label, label_hex, text_hex_on
from endostream.output.table import count, format_clock
from endostream.procedure import FrameTable, Procedure
from endostream.procedure.thumbnails import data_uri, section_thumbnails
from endostream.review.chapters import chapters_of, to_webvtt
from endostream.review.timeline_plot import draw_timeline, timeline_ticks
from endostream.segmentation.section import UNUSABLE

#: Report kinds by file extension.
PICTURE_KINDS = (".png", ".svg")
HTML_KINDS = (".html", ".htm")
TEMPLATE = "report.html.j2"
#: How much of the video's path the report shows (``--path-in-report``). Clinics name
#: folders and files after patients, and a report is made to be passed on, so the default
#: shows neither.
PATH_MODES = ("full", "name", "none")
DEFAULT_PATH_MODE = "none"
#: The report's title when it may not name the video.
UNNAMED_TITLE = "Procedure review"
#: A part of the page that another package draws (the corrections editor,
#: :func:`endostream.corrections.editor.editor_html`): called with the procedure and the
#: video and model paths the page may show, it returns HTML placed below the sections
#: table. The review package knows nothing of corrections; the command hands it in.
PagePart = Callable[[Procedure, "str | None", "str | None"], str]


def shown_path(path: str, mode: str) -> str | None:
    """What the report says of ``path`` under ``--path-in-report mode`` (``None``: nothing).

    >>> [shown_path("/clinic/Doe Jane/2024-05-01.mp4", m) for m in PATH_MODES]
    ['/clinic/Doe Jane/2024-05-01.mp4', '2024-05-01.mp4', None]
    """
    if mode not in PATH_MODES:
        raise UsageError(f"unknown --path-in-report '{mode}'; use one of {', '.join(PATH_MODES)}")
    if not path or mode == "none":
        return None
    return path if mode == "full" else Path(path).name


def clock(t: float) -> str:
    """Seconds as ``m:ss.s`` (``h:mm:ss.s`` from an hour on), never negative.

    >>> clock(83.44), clock(3725.0)
    ('1:23.4', '1:02:05.0')
    """
    return format_clock(max(t, 0.0))


@dataclass(frozen=True)
class Row:
    """One section as the table shows it."""

    number: int
    label: str
    color: str
    text_color: str
    start_s: float
    start: str
    end: str
    duration: str
    good: str
    confidence: str
    unusable: bool
    thumbnail: str | None


def load_template():
    try:
        import jinja2
    except ImportError as e:
        raise UsageError(f"the HTML report needs jinja2, which is not installed; "
                         f"{INSTALL_HINT}") from e
    templates = resources.files("endostream.review").joinpath("templates")

    def source(name: str) -> str:  # the page's parts ({% include %}) ship beside it
        return templates.joinpath(name).read_text(encoding="utf-8")

    env = jinja2.Environment(loader=jinja2.FunctionLoader(source), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    return env.get_template(TEMPLATE)


def video_link(video: Path, report: Path) -> str:
    """The video's URL as seen from the report: relative when possible, percent-encoded.

    >>> video_link(Path("/a/b/v <1>.mp4"), Path("/a/r.html"))
    'b/v%20%3C1%3E.mp4'
    """
    try:
        rel = os.path.relpath(video.resolve(), report.resolve().parent)
    except ValueError:  # another drive (Windows)
        return video.resolve().as_uri()
    return percent_encode(Path(rel).as_posix())


def render_html(procedure: Procedure, out: Path, *, frames: FrameTable | None = None,
                thumbnails: list[np.ndarray | None] | None = None,
                player: bool = True, path_mode: str = DEFAULT_PATH_MODE,
                editor: PagePart | None = None) -> str:
    """The report page as text (see the module docstring); ``path_mode`` is one of
    :data:`PATH_MODES` and applies to the video's and the model's paths; ``editor`` draws
    the edit mode (none without it)."""
    template = load_template()
    from markupsafe import Markup  # jinja2's own dependency, present once it loaded
    png, geometry = draw_timeline(procedure, frames, fmt="png")
    if thumbnails is None:
        thumbnails = (section_thumbnails(procedure.video, procedure.sections, frames,
                                         procedure.document.analysis.good_threshold)
                      if procedure.video is not None else [None] * len(procedure.sections))
    rows = []
    for i, (s, thumb) in enumerate(zip(procedure.sections, thumbnails, strict=True), 1):
        color = label_hex(s.label, procedure.document.organ_labels)
        rows.append(Row(number=i, label=display_label(s.label), color=color,
                        text_color=text_hex_on(color), start_s=round(s.start_s, 3),
                        start=clock(s.start_s), end=clock(s.end_s),
                        duration=clock(s.end_s - s.start_s), good=f"{s.good_fraction:.0%}",
                        confidence=f"{s.confidence:.2f}", unusable=s.label == UNUSABLE,
                        thumbnail=data_uri(thumb) if thumb is not None else None))
    source = procedure.document.source
    video_src = None
    if player and procedure.video is not None:
        video_src = video_link(procedure.video, out)
    vtt = to_webvtt(chapters_of(procedure.sections)).encode("utf-8")
    duration = geometry.duration_s
    models = procedure.document.models
    video_shown = shown_path(source.path, path_mode)
    # A model's path names no patient, but may name a colleague's home folder.
    model_shown = shown_path(models.path, "full" if path_mode == "full" else "name")
    context: dict[str, Any] = {
        "title": (Path(video_shown).name if video_shown else None) or UNNAMED_TITLE,
        "complete": procedure.document.complete,
        "rows": rows,
        "sections_count": count(len(rows), "section"),
        "timeline": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        "timeline_x0": geometry.x0_px / geometry.width_px,
        "timeline_x1": geometry.x1_px / geometry.width_px,
        "duration_s": round(geometry.duration_s, 3),
        "video_src": video_src,
        "video_missing": player and procedure.video is None,
        "bar": [{"label": display_label(s.label), "start": clock(s.start_s),
                 "width": round(max(s.end_s - s.start_s, 0.0), 3),
                 "color": label_hex(s.label, procedure.document.organ_labels),
                 "text_color": text_hex_on(label_hex(s.label, procedure.document.organ_labels)),
                 "unusable": s.label == UNUSABLE} for s in procedure.sections],
        # Four intervals: a phone's bar is ~370 px wide and a label ~40 px.
        "bar_ticks": [{"left": round(100 * t / duration, 3), "label": label}
                      for t, label in timeline_ticks(duration, 4)],
        "chapters_vtt": "data:text/vtt;base64," + base64.b64encode(vtt).decode("ascii"),
        "source": {
            "path": video_shown,
            "size": f"{source.width}x{source.height}",
            "fps": f"{source.fps:.3g}" if source.fps else "?",
            "frames": source.frames,
            "duration": clock(procedure.document.duration_s),
        },
        "model": {
            "path": model_shown,
            "sha256": ", ".join(h[:12] for h in models.sha256.split(",")),
            "heads": {h: ", ".join(map(display_label, labels))
                      for h, labels in models.heads.items()},
        },
        "analysis": {
            "frames_analysed": procedure.document.analysis.frames_analysed,
            "sample_fps": procedure.document.analysis.sample_fps,
        },
        "legend": [(display_label(lab), label_hex(lab, procedure.document.organ_labels))
                   for lab in [*procedure.document.organ_labels, UNUSABLE]],
        "version": __version__,
        # The part is HTML made by its own autoescaping template, so it is marked safe here.
        "editor": Markup(editor(procedure, video_shown, model_shown)) if editor else "",
    }
    return template.render(**context)


def write_report(procedure: Procedure, out: str | os.PathLike, *,
                 frames: FrameTable | None = None,
                 thumbnails: list[np.ndarray | None] | None = None,
                 player: bool = True, path_mode: str = DEFAULT_PATH_MODE,
                 editor: PagePart | None = None) -> Path:
    """Write the kind ``out``'s extension names: ``.html``, or the timeline ``.png``/``.svg``.

    ``thumbnails`` (one small RGB array per section) skips decoding them again; ``editor``
    draws the page's edit mode (:data:`PagePart`).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix in PICTURE_KINDS:
        data, _ = draw_timeline(procedure, frames, fmt=suffix[1:])
        write_bytes_atomic(out, data, hint="choose another --out")
    elif suffix in HTML_KINDS:
        html = render_html(procedure, out, frames=frames, thumbnails=thumbnails, player=player,
                           path_mode=path_mode, editor=editor)
        write_text_atomic(out, html, hint="choose another --out")
    else:
        raise UsageError(f"unknown report kind '{out.suffix or out.name}'; end --out with "
                         ".html, .png or .svg")
    return out
