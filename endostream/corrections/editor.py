"""The report's edit mode: the markup, style and script with which a reviewer corrects
sections in the page and saves them as a new file.

:func:`editor_html` is handed to :func:`endostream.review.report.write_report` as its
``editor`` part by the commands that write a report (``report``, ``segment --report``); the
review package never imports this one. The page saves a document that
:mod:`endostream.corrections.rules` reads.
"""

from __future__ import annotations

from dataclasses import replace
from importlib import resources
from typing import Any

from endostream import __version__
from endostream.corrections.names import (
    corrected_file_name,
    names_recording,
    neutral_corrected_name,
)
from endostream.corrections.rules import allowed_labels, page_rules
from endostream.output.palette import display_label, label_hex, text_hex_on
from endostream.procedure import Procedure

TEMPLATE = "corrections.html.j2"


def editor_html(procedure: Procedure, video_path: str | None, model_path: str | None) -> str:
    """The edit mode as HTML for the report of ``procedure`` (the paths are those the page
    may show, see :func:`corrections_context`). Needs jinja2, as the report does."""
    import jinja2  # the report checked it is installed before drawing its parts

    templates = resources.files("endostream.corrections").joinpath("templates")

    def source(name: str) -> str:
        return templates.joinpath(name).read_text(encoding="utf-8")

    env = jinja2.Environment(loader=jinja2.FunctionLoader(source), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    context = corrections_context(procedure, video_path=video_path, model_path=model_path)
    return env.get_template(TEMPLATE).render(corrections=context)


def corrections_context(procedure: Procedure, *, video_path: str | None,
                        model_path: str | None) -> dict[str, Any]:
    """What the edit mode's script needs: the document as it was read, the labels it may
    use (with their colours), the rules its file must keep (:func:`page_rules`) and the
    name of the file it saves (:func:`saved_name`).

    The paths are those the page may show (``--path-in-report``): a file saved from a
    report that names no video has an empty ``source.path`` (give the video with
    ``--video`` wherever it is used) and a neutral name.
    """
    document = procedure.document
    doc = replace(document, source=replace(document.source, path=video_path or ""),
                  models=replace(document.models, path=model_path or "")).to_json()
    labels = []
    for value in allowed_labels(procedure.document.models):
        color = label_hex(value, procedure.document.organ_labels)
        labels.append({"value": value, "name": display_label(value), "color": color,
                       "text": text_hex_on(color)})
    return {"document": doc, "labels": labels, "rules": page_rules(document),
            "tool": f"endostream report {__version__}",
            "filename": saved_name(procedure, video_shown=video_path is not None)}


def saved_name(procedure: Procedure, *, video_shown: bool) -> str:
    """The name the page saves under: derived from the sections file's name
    (:func:`~endostream.corrections.names.corrected_file_name`), or from the recording's
    fingerprint where the page may not name the recording and that name holds it."""
    sections_name = procedure.sections_path.name
    if not video_shown and names_recording(sections_name, procedure.document.source.path):
        return neutral_corrected_name(procedure.document.source.fingerprint)
    return corrected_file_name(sections_name)
