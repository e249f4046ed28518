"""Try endostream in one command: generate a synthetic procedure and segment it.

Renders a short SYNTHETIC stand-in procedure (nose, vocal folds, ear, with blurred, dark
and black stretches; not real anatomy) with its ground truth, segments it with the
bundled demo EfficientNetB0 models (or --models), and prints the sections found next to
the truth with boundary error and segment F1. Files go to --out-dir.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from endostream.commands.common import ModelChoice, add_model_arguments
from endostream.evaluation.sections import evaluate_sections
from endostream.output.atomic import write_json_atomic
from endostream.output.guard import (
    add_overwrite_option,
    check_outputs,
    prepare_output_folder,
    say_wrote,
)
from endostream.output.progress import Progress
from endostream.output.table import format_sections_table
from endostream.pipeline.files import VideoFiles, Written, segment_to_files
from endostream.pipeline.offline import SegmentOptions, SegmentResult
from endostream.synth import default_spec, render_procedure

#: Size of the demo video: small enough to render and segment in well under a minute on
#: two cores, large enough that the content-area crop has work to do.
DEMO_SIZE = (640, 360)

#: The files the demo writes into --out-dir (a rerun replaces them with --overwrite).
DEMO_FILES = ("procedure.mp4", "procedure.truth.json", "frames.csv", "sections.json",
              "metrics.json")

EXAMPLES = """\
examples:
  endostream demo                              # into ./endostream-demo/
  endostream demo --out-dir /tmp/demo --seed 3
  endostream demo --models endostream.onnx     # your own model on the synthetic procedure

--out-dir is created and checked before rendering; the demo's files of an earlier run in
it are replaced only with --overwrite, and none of them may be a --models file.

exit codes: 0 done, 2 bad arguments, 4 model problem, 5 output not writable
"""


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out-dir", type=Path, default=Path("endostream-demo"),
                   help="where the video, truth and sections go (default: %(default)s)")
    p.add_argument("--seed", type=int, default=7,
                   help="seed of the procedure (default: %(default)s)")
    add_model_arguments(p)
    add_overwrite_option(p)


def run(args: argparse.Namespace) -> int:
    model = ModelChoice.from_args(args)
    out = prepare_output_folder("--out-dir", args.out_dir)
    check_outputs({f"--out-dir's {name}": out / name for name in DEMO_FILES},
                  {"--models": model.input_paths()}, overwrite=args.overwrite)
    video = out / "procedure.mp4"
    print(f"1/2 rendering a synthetic 39 s procedure to {video} (stand-in scenes, not real "
          "anatomy) ...", file=sys.stderr)
    truth = render_procedure(video, default_spec(), width=DEMO_SIZE[0], height=DEMO_SIZE[1],
                             fps=25.0, seed=args.seed)
    truth.write(out / "procedure.truth.json")
    with model.load() as classifier:  # closed however the run ends
        print(f"2/2 segmenting with {', '.join(p.name for p in classifier.paths)} on "
              f"{classifier.provider} ...", file=sys.stderr)

        def summary(result: SegmentResult, written: Written) -> None:
            metrics = evaluate_sections(result.sections, truth.sections)
            write_json_atomic(out / "metrics.json", metrics)
            print("sections found")
            print(format_sections_table(result.sections, truth=truth.sections))
            print(f"\nsegment F1 {metrics['f1']:.2f} · median boundary error "
                  f"{_fmt(metrics['boundary_error_s'])} · "
                  f"{result.analysed_fps:.1f} analysed frames/s")
            for name in DEMO_FILES:  # the CSV is the only file whose failure is kept
                if name != "frames.csv" or written.csv is not None:
                    say_wrote(out / name)

        segment_to_files(video, classifier, SegmentOptions(),
                         VideoFiles(sections=out / "sections.json", csv=out / "frames.csv",
                                    hint="choose another --out-dir"),
                         progress=Progress(None, enabled=not args.quiet), on_written=summary)
    return 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"
