"""Correct sections in Label Studio: export them as tasks, import the corrections back.

'labelstudio export SECTIONS... --out tasks.json' writes one task per sections file (the
video, its frame rate, the sections as predictions of a TimelineLabels control) and the
labelling config to paste into the project (printed, or written with --config). Label
Studio counts frames from 1 at one fixed rate: a video with a variable frame rate or that
does not start at 0 is refused with the ffmpeg command for a constant-rate copy.
'labelstudio import EXPORT.json --out-dir DIR' reads Label Studio's JSON export and writes
one corrected sections.json per annotated task (NAME.corrected.sections.json, after the
task's sections file); a task whose regions overlap, leave frames unlabelled or use a label
the model does not know is refused and nothing is written.
'labelstudio push SECTIONS... --url URL --token TOKEN' does the export's work on a running
Label Studio: the project (made, or found by title), its local-files storages, the tasks
(a task of a video already in the project is not pushed again); 'labelstudio pull --url
URL --token TOKEN --project ID --out-dir DIR' exports the project and imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from endostream.corrections.labelstudio import (
    check_constant_rate,
    corrected_documents,
    default_root,
    labelling_config,
    storage_folders,
    task_of,
    video_url,
)
from endostream.corrections.rules import allowed_labels
from endostream.errors import CorrectionsError, UsageError, VideoError
from endostream.output.atomic import write_text_atomic
from endostream.output.guard import add_overwrite_option, check_outputs, say_wrote
from endostream.output.table import count
from endostream.procedure import load_procedure
from endostream.review.outputs import check_output, check_output_dir

#: Where Label Studio serves files of its local storage from (see docs/labelstudio.md).
DEFAULT_URL_PREFIX = "/data/local-files/?d="

EXAMPLES = """\
examples:
  endostream labelstudio export results/*.sections.json --out tasks.json --config config.xml
  endostream labelstudio import project-1-export.json --out-dir corrected/
  endostream labelstudio push results/*.sections.json --url http://localhost:8080 --token T
  endostream labelstudio pull --url http://localhost:8080 --token T --project 1 --out-dir corrected/

exit codes: 0 done, 2 bad arguments or sections file, 3 video missing, unreadable, of a
variable frame rate or not starting at 0, 5 output not writable, 9 an annotation that
cannot be a correction (nothing written), 10 Label Studio could not be reached, refused the
token or has no such project (push, pull)
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
                         "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT; default: the folder "
                         "above the videos' common folder)")
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
    _add_server_actions(sub)


def run(args: argparse.Namespace) -> int:
    return {"export": run_export, "import": run_import, "push": run_push,
            "pull": run_pull}[args.action](args)


def run_export(args: argparse.Namespace) -> int:
    procedures = [load_procedure(path) for path in args.sections]
    videos = [p.require_video() for p in procedures]
    check_outputs({"--out": args.out, "--config": args.config},
                  {"SECTIONS": list(args.sections), "a video": videos},
                  overwrite=args.overwrite)
    root = args.root or default_root(videos)
    tasks, config = _tasks_and_config(procedures, videos, root, args.url_prefix)
    write_text_atomic(args.out, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n",
                      hint="choose another --out")
    if args.config is not None:
        write_text_atomic(args.config, config + "\n", hint="choose another --config")
    else:
        print(config)
    storages = ""
    if args.url_prefix == DEFAULT_URL_PREFIX:
        folders = " and ".join(f"'{f}'" for f in storage_folders(videos, root))
        storages = (f", and add {folders} as Local Files storage (Label Studio started "
                    f"with LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={root.resolve()})")
    say_wrote(args.out, f"{count(len(tasks), 'task')}; paste the labelling config into the "
                        f"project's Labeling Interface{storages}")
    if args.config is not None:
        say_wrote(args.config)
    return 0


def _tasks_and_config(procedures: Sequence, videos: Sequence[Path], root: Path,
                      prefix: str) -> tuple[list[dict], str]:
    """One task per procedure (its video's URL below ``root``) and the labelling config
    of every label the models know."""
    for p, video in zip(procedures, videos, strict=True):
        check_constant_rate(video, p.document.source.fps)
    if prefix == DEFAULT_URL_PREFIX:  # served by Label Studio: refuse what 1.23 will not
        storage_folders(videos, root)
    tasks = [task_of(p.document, video_url(v, root=root, prefix=prefix),
                     p.sections_path.name)
             for p, v in zip(procedures, videos, strict=True)]
    labels: list[str] = []
    organ: list[str] = []
    for p in procedures:
        labels += [lab for lab in allowed_labels(p.document.models) if lab not in labels]
        organ += [lab for lab in p.document.organ_labels if lab not in organ]
    return tasks, labelling_config(labels, organ)


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
    if not docs:  # before the folder is made: a refused import writes nothing
        held = f"{count(unannotated, 'task')}, none annotated" if unannotated else "no tasks"
        raise CorrectionsError(f"'{args.export}' holds no annotation ({held}): nothing to "
                               "import; in Label Studio submit each task you corrected (or "
                               "accept its prediction), then export the project again")
    out_dir = check_output_dir(args.out_dir)
    outputs = {f"--out-dir file {i + 1}": out_dir / name
               for i, (name, _) in enumerate(docs)}
    names = [p.name for p in outputs.values()]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise UsageError(f"two tasks would both be saved as '{twice}' (sections files of one "
                         "name); import them into separate folders (export one project per "
                         "folder of sections files)")
    for path in outputs.values():
        if path.exists() and not args.overwrite:
            raise UsageError(f"'{path}' exists; add --overwrite to replace it, or choose "
                             "another --out-dir")
        check_output(path, inputs=[args.export], option="--out-dir")
    for (_, doc), path in zip(docs, outputs.values(), strict=True):
        write_text_atomic(path, doc.dumps(), hint="choose another --out-dir")
    for (_, doc), path in zip(docs, outputs.values(), strict=True):
        say_wrote(path, f"{count(len(doc.review.changed) if doc.review else 0, 'section')} "
                        "changed")
    if unannotated:
        print(f"endostream: {count(unannotated, 'task')} without an annotation left out",
              file=sys.stderr)
    return 0


# -- push and pull: the same through Label Studio's HTTP API -------------------------------

#: The project push makes (or finds by this title) when --project is not given.
DEFAULT_PROJECT = "endostream sections"


#: Seconds one call to Label Studio may take before it counts as no answer (an export of
#: a large project is the slowest call).
DEFAULT_TIMEOUT_S = 60.0


def _add_server_actions(sub: argparse._SubParsersAction) -> None:
    # The client (and urllib) is imported by push and pull only, never at start-up.
    def server(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", required=True, metavar="URL",
                       help="Label Studio's address, e.g. http://localhost:8080 (only this "
                            "server is contacted)")
        p.add_argument("--token", required=True, metavar="TOKEN",
                       help="your access token (Label Studio: Account & Settings)")
        p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                       help="seconds each call to the server may take (default: "
                            "%(default)g)")

    push = sub.add_parser("push", help="sections files -> tasks in a Label Studio project",
                          description="Create (or find by title) a Label Studio project "
                                      "with the labelling config, add the videos' folders as "
                                      "Local Files storages, import one task per sections "
                                      "file with the sections as predictions, and print "
                                      "the project's address. A video already in the "
                                      "project is not pushed again.")
    push.add_argument("sections", type=Path, nargs="+", metavar="SECTIONS",
                      help="sections.json files written by 'endostream segment'")
    server(push)
    push.add_argument("--project", metavar="NAME|ID", default=DEFAULT_PROJECT,
                      help="the project: its id, or a title (made if no project has it; "
                           "default: '%(default)s')")
    push.add_argument("--root", type=Path, metavar="DIR",
                      help="the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, as a path "
                           "on this machine (default: the folder above the videos' common "
                           "folder); the videos must lie in subfolders of it")
    pull = sub.add_parser("pull", help="a Label Studio project -> corrected sections files",
                          description="Export a Label Studio project as JSON and import it: "
                                      "the same checks and files as 'labelstudio import'.")
    server(pull)
    pull.add_argument("--project", required=True, type=int, metavar="ID",
                      help="the project's id (its address ends in /projects/ID)")
    pull.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                      help="where the corrected files go (an existing file is replaced only "
                           "with --overwrite)")
    add_overwrite_option(pull)


def _client(args: argparse.Namespace):
    from endostream.corrections.labelstudio_api import LabelStudio

    if not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout:g} must be more than 0 seconds")
    return LabelStudio(args.url, args.token, timeout_s=args.timeout)


def run_push(args: argparse.Namespace) -> int:
    procedures = [load_procedure(path) for path in args.sections]
    videos = [p.require_video() for p in procedures]
    root = args.root or default_root(videos)
    if not root.is_dir():
        raise VideoError(f"--root '{root}' is not a folder; give the folder Label Studio "
                         "serves local files from")
    tasks, config = _tasks_and_config(procedures, videos, root, DEFAULT_URL_PREFIX)
    names = [Path(v).name for v in videos]
    if len(set(names)) != len(names):
        raise UsageError("two sections files are of videos with the same file name; their "
                         "corrected files would collide on pull: push them to separate "
                         "projects (--project)")
    ls = _client(args)
    if args.project.isdigit():
        project = ls.project(int(args.project))
    else:
        project = ls.find_project(args.project) or ls.create_project(args.project, config)
    if project.label_config.strip() != config.strip():
        ls.set_label_config(project.id, config)
    have = set(ls.local_storage_paths(project.id))
    added = [f for f in storage_folders(videos, root) if str(f) not in have]
    for folder in added:
        ls.add_local_storage(project.id, str(folder), f"endostream videos: {folder.name}")
    existing = {t.get("data", {}).get("video"): t for t in ls.export(project.id)
                if isinstance(t, dict) and isinstance(t.get("data"), dict)}
    new = [t for t in tasks if t["data"]["video"] not in existing]
    stale = sum(1 for t in tasks if t["data"]["video"] in existing
                and existing[t["data"]["video"]]["data"].get("endostream")
                != t["data"]["endostream"])
    made = ls.import_tasks(project.id, new) if new else 0
    print(ls.project_address(project.id))
    note = (f"; {count(stale, 'video')} already there with other sections kept as they "
            "were (delete those tasks in Label Studio to push the new sections)"
            if stale else "")
    print(f"project '{project.title}' ({project.id}): {count(made, 'task')} imported, "
          f"{count(len(tasks) - len(new), 'task')} already there{note}; videos served "
          f"from {count(len(added), 'new Local Files storage')} below {root.resolve()}",
          file=sys.stderr)
    return 0


def run_pull(args: argparse.Namespace) -> int:
    ls = _client(args)
    project = ls.project(args.project)
    tasks = ls.export(project.id)
    # The export goes through 'labelstudio import' unchanged: one set of checks and files.
    with tempfile.TemporaryDirectory(prefix="endostream-pull-") as tmp:
        export = Path(tmp) / f"project-{project.id}-export.json"
        export.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
        return run_import(argparse.Namespace(export=export, out_dir=args.out_dir,
                                             overwrite=args.overwrite))
