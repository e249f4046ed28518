"""Correct sections in Label Studio: export them as tasks, import the corrections back.

'labelstudio export SECTIONS... --out tasks.json' writes one task per sections file (the
video, its frame rate, the sections as predictions of a TimelineLabels control) and the
labelling config to paste into the project (printed, or written with --config). Label
Studio counts frames from 1 at one fixed rate: a video with a variable frame rate or that
does not start at 0 is refused with the ffmpeg command for a constant-rate copy.
'labelstudio import EXPORT.json --out-dir DIR' reads Label Studio's JSON export and writes
one corrected sections.json per annotated task (VIDEO-stem.corrected.sections.json); a
task whose regions overlap, leave frames unlabelled or use a label the model does not know
is refused and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from endostream.corrections.labelstudio import (
    check_constant_rate,
    corrected_documents,
    corrected_name,
    labelling_config,
    task_of,
    video_url,
)
from endostream.corrections.rules import allowed_labels
from endostream.errors import CorrectionsError, UsageError
from endostream.output.atomic import write_text_atomic
from endostream.output.guard import add_overwrite_option, check_outputs, say_wrote
from endostream.output.table import count
from endostream.procedure import load_procedure
from endostream.review.outputs import check_output, check_output_dir

#: Where Label Studio serves files of its local storage from (see the README).
DEFAULT_URL_PREFIX = "/data/local-files/?d="

EXAMPLES = """\
examples:
  endostream labelstudio export results/*.sections.json --out tasks.json --config config.xml
  endostream labelstudio import project-1-export.json --out-dir corrected/

exit codes: 0 done, 2 bad arguments or sections file, 3 video missing, unreadable, of a
variable frame rate or not starting at 0, 5 output not writable, 9 an annotation that
cannot be a correction (nothing written)
"""


def configure_parser(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ex = sub.add_parser("export", help="sections files -> Label Studio tasks and config",
                        description=__doc__.split("\n\n")[1].split("\n'labelstudio import")[0])
    ex.add_argument("sections", type=Path, nargs="+", metavar="SECTIONS",
                    help="sections.json files written by 'endostream segment' (their videos "
                         "are found at source.path, as written or next to the file)")
    ex.add_argument("--out", type=Path, required=True, metavar="tasks.json",
                    help="the tasks to import into Label Studio (Import -> Upload Files)")
    ex.add_argument("--config", type=Path, metavar="config.xml",
                    help="write the labelling config here (default: print it on stdout)")
    ex.add_argument("--root", type=Path, metavar="DIR",
                    help="the folder Label Studio serves the videos from (its "
                         "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT; default: the videos' "
                         "common folder)")
    ex.add_argument("--url-prefix", default=DEFAULT_URL_PREFIX, metavar="URL",
                    help="what goes before each video's path below --root in its URL "
                         "(default: %(default)s, Label Studio's local storage)")
    add_overwrite_option(ex)
    im = sub.add_parser("import", help="a Label Studio JSON export -> corrected sections files",
                        description="Read Label Studio's JSON export (Export -> JSON) of "
                                    "tasks written by 'labelstudio export' and write one "
                                    "corrected sections.json per annotated task.")
    im.add_argument("export", type=Path, metavar="EXPORT.json",
                    help="Label Studio's JSON export of the project")
    im.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                    help="where the corrected files go (an existing file is replaced only "
                         "with --overwrite)")
    add_overwrite_option(im)


def run(args: argparse.Namespace) -> int:
    return run_export(args) if args.action == "export" else run_import(args)


def run_export(args: argparse.Namespace) -> int:
    procedures = [load_procedure(path) for path in args.sections]
    videos = [p.require_video() for p in procedures]
    check_outputs({"--out": args.out, "--config": args.config},
                  {"SECTIONS": list(args.sections), "a video": videos},
                  overwrite=args.overwrite)
    for p, video in zip(procedures, videos, strict=True):
        check_constant_rate(video, p.document.source.fps)
    root = args.root or Path(_common_folder(videos))
    tasks = [task_of(p.document, video_url(v, root=root, prefix=args.url_prefix))
             for p, v in zip(procedures, videos, strict=True)]
    labels: list[str] = []
    organ: list[str] = []
    for p in procedures:
        labels += [lab for lab in allowed_labels(p.document.models) if lab not in labels]
        organ += [lab for lab in p.document.organ_labels if lab not in organ]
    config = labelling_config(labels, organ)
    write_text_atomic(args.out, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n",
                      hint="choose another --out")
    if args.config is not None:
        write_text_atomic(args.config, config + "\n", hint="choose another --config")
    else:
        print(config)
    say_wrote(args.out, f"{count(len(tasks), 'task')}; paste the labelling config into the "
                        "project's Labeling Interface")
    if args.config is not None:
        say_wrote(args.config)
    return 0


def _common_folder(paths: list[Path]) -> str:
    return os.path.commonpath([str(p.resolve().parent) for p in paths])


def run_import(args: argparse.Namespace) -> int:
    try:
        tasks = json.loads(args.export.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"export not found: '{args.export}'; give the JSON file of Label "
                         "Studio's Export -> JSON") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CorrectionsError(f"'{args.export}' is not a Label Studio JSON export "
                               f"({' '.join(str(e).split())}); export the project as "
                               "JSON") from e
    if not isinstance(tasks, list):
        raise CorrectionsError(f"'{args.export}' is not a Label Studio JSON export (not a "
                               "list of tasks); export the project as JSON (not JSON-MIN)")
    docs, unannotated = corrected_documents(tasks)
    out_dir = check_output_dir(args.out_dir)
    outputs = {f"--out-dir file {i + 1}": out_dir / corrected_name(d, i + 1)
               for i, d in enumerate(docs)}
    names = [p.name for p in outputs.values()]
    if len(set(names)) != len(names):
        raise UsageError("two tasks are of videos with the same file name; import them into "
                         "separate folders (export one project per folder of videos)")
    for path in outputs.values():
        if path.exists() and not args.overwrite:
            raise UsageError(f"'{path}' exists; add --overwrite to replace it, or choose "
                             "another --out-dir")
        check_output(path, inputs=[args.export], option="--out-dir")
    for doc, path in zip(docs, outputs.values(), strict=True):
        write_text_atomic(path, doc.dumps(), hint="choose another --out-dir")
    for doc, path in zip(docs, outputs.values(), strict=True):
        say_wrote(path, f"{count(len(doc.review.changed) if doc.review else 0, 'section')} "
                        "changed")
    if unannotated:
        print(f"endostream: {count(unannotated, 'task')} without an annotation left out",
              file=sys.stderr)
    return 0
