"""Every case of the corpus of bad and odd inputs, through the real CLI in a subprocess.

The corpus (tests/helpers/corpus.py) is written once per module from a seed; each case
runs ``python -m endostream segment`` with a hard timeout, and
:func:`helpers.corpus_run.problems` lists how the run differs from the case's expectation:
exit code, one error line without a traceback, sections.json presence, ``complete`` flag
and schema, the CSV, no stray files, and the case's own checks (frame sizes of the
rotated clip, VFR times, where the content after a black start begins, no patient
metadata in anything written). ``python -m tests.helpers.corpus OUT --run`` prints the
same runs as a table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from endostream.cli import main
from helpers.corpus import CASES, PATIENT_STRINGS, write_corpus
from helpers.corpus_run import problems, run_case
from helpers.onnx_models import build_color_model


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_color_model(tmp_path_factory.mktemp("model") / "color.onnx")


@pytest.mark.parametrize("name", list(CASES))
def test_corpus_case(name, corpus, model, tmp_path):
    case = CASES[name]
    reason = case.skip() if case.skip is not None else None
    if reason:
        pytest.skip(reason)
    result = run_case(corpus[name], [model], tmp_path / "out")
    found = problems(case, result)
    assert not found, f"{name} ({case.how}): {found}\nstderr:\n{result.stderr}"


def test_every_outcome_kind_is_covered():
    kinds = {c.expect for c in CASES.values()}
    assert kinds == {"processed", "error", "partial"}


def test_live_headless_keeps_patient_metadata_out(corpus, model, tmp_path, capsys):
    """The live path writes sections.json too; it must not copy the tags either."""
    out = tmp_path / "live.json"
    code = main(["live", "--file", str(corpus["patient-metadata"]), "--headless",
                 "--out", str(out), "--models", str(model), "--device", "cpu"])
    assert code == 0
    text = out.read_text(encoding="utf-8")
    assert json.loads(text)["complete"] is True
    written = text + capsys.readouterr().err
    assert not [s for s in PATIENT_STRINGS if s in written]
