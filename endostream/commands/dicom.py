"""Write a procedure into the hospital record: DICOM files, optionally sent to a PACS.

Writes into --out-dir one VL Endoscopic Image per organ section (its most confident good
frame with --csv, else its middle frame, at the recording's full resolution) and one
Comprehensive SR document that lists every section (label, start, end, share of good
frames, confidence, the model's sha256) and references the images, all in one study;
with --with-video also the whole recording as a Video Endoscopic Image (H.264, copied
packet for packet where it qualifies). Patient and study identity come only from the
options below or from --like; never from the recording's file name or metadata. Without
them the files are marked anonymous; with --worklist they come from the one Modality
Worklist item that matches. Every value is checked against DICOM before anything is
written, and the folder is written all or nothing. UIDs are derived from the recording
and the sections, so a run again stores the same instances. With --send the files are
stored in an archive by C-STORE, each status checked, then committed by Storage
Commitment (--commit-port) or looked up again with C-FIND; they stay in --out-dir
whatever the archive answers. Give an export folder instead of SECTIONS to send it again.
Needs the dicom extra: pip install 'endostream[dicom]'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from endostream.commands.common import add_input_arguments
from endostream.commands.dicom_options import (
    INSTALL_HINT,
    add_export_arguments,
    add_identity_arguments,
    identity_of,
    require_dicom_extra,
    say_written,
)
from endostream.errors import SendError, UsageError
from endostream.output.guard import add_overwrite_option, check_outputs
from endostream.output.table import count
from endostream.procedure import load_procedure, read_frames_csv
from endostream.review.outputs import check_output_dir

EXAMPLES = """\
examples:
  endostream dicom sections.json --out-dir dicom/ --accession A2026-0042 \\
      --worklist ris.hospital.org:104 --called-aet RIS
  endostream dicom dicom/ --send pacs.hospital.org:104 --called-aet PACS \\
      --commit-port 11113                       # send the folder again

exit codes: 0 done, 2 bad arguments or values DICOM does not allow, 3 recording missing,
5 output not writable, 10 the archive or worklist failed (the files stay in --out-dir)
"""


#: Left out of ``--help``, shown by ``--help-all`` and in docs/cli.md (endostream.cli).
RARE_OPTIONS = ["--aet", "--retries", "--worklist-aet", "--scheduled-station", "--anatomy-map",
                "--commit-timeout", "--study-uid", "--allow-anonymous"]


def configure_parser(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--out-dir", type=Path, metavar="DIR",
                   help="where the DICOM files go (required unless SECTIONS is an export "
                        "folder to send again)")
    p.add_argument("--csv", type=Path, metavar="frames.csv",
                   help="the per-frame CSV of 'segment --csv': key frames are each section's "
                        "most confident good frame (default: its middle)")
    p.add_argument("--with-video", action="store_true",
                   help="also the recording as a Video Endoscopic Image, for the SR's "
                        "sections to point into (default: no)")
    add_overwrite_option(p, also=" (an earlier export's files in --out-dir)")
    add_identity_arguments(p)
    add_export_arguments(p)
    net = p.add_argument_group("sending (the only time endostream opens a connection)")
    net.add_argument("--send", metavar="HOST:PORT",
                     help="store the files in this archive with C-STORE (default: write only)")
    net.add_argument("--aet", default="ENDOSTREAM", metavar="TITLE",
                     help="our AE title, as the archive knows it (default: %(default)s)")
    net.add_argument("--called-aet", metavar="TITLE",
                     help="the archive's AE title (required with --send)")
    net.add_argument("--retries", type=int, default=3, metavar="N",
                     help="tries again when the archive cannot be reached or refuses the "
                          "association for now, pausing 1, 2, 3... s; a permanent refusal "
                          "is final (default: %(default)s)")
    net.add_argument("--commit-port", metavar="[HOST:]PORT",
                     help="ask for Storage Commitment and take the archive's report on this "
                          "port (default: checked by C-FIND)")
    net.add_argument("--commit-timeout", type=float, default=60.0, metavar="SECONDS",
                     help="how long to wait for the commitment report (default: %(default)s)")
    net.add_argument("--allow-anonymous", action="store_true",
                     help="send files without a patient identity (default: --send needs "
                          "--patient-id, --like or --worklist, so that nothing lands unfiled "
                          "in a PACS)")


def _check_send_options(args: argparse.Namespace):
    """The network module and the archive address, checked before any work."""
    needs_send = [o for o, given in (("--allow-anonymous", args.allow_anonymous),
                                     ("--commit-port", args.commit_port is not None))
                  if given]
    if args.send is None and args.worklist is None and args.called_aet is not None:
        needs_send.insert(0, "--called-aet")
    if args.send is None:
        if needs_send:
            raise UsageError(f"{needs_send[0]} is only used with --send HOST:PORT")
        if args.worklist is None:
            return None, None
    try:
        from endostream.dicom import net  # noqa: F401
        from endostream.dicom.net import association
    except ImportError as e:
        raise UsageError(f"--send and --worklist need {INSTALL_HINT}; missing: {e.name}"
                         ) from None
    if args.send is not None and args.called_aet is None:
        raise UsageError("--send needs --called-aet TITLE: the archive's AE title (ask the "
                         "PACS administrator)")
    if args.retries < 0:
        raise UsageError(f"--retries {args.retries} is negative; give 0 or more")
    association.check_ae_title(args.aet, "--aet")
    if args.called_aet is not None:
        association.check_ae_title(args.called_aet, "--called-aet")
    if args.commit_port is not None:
        host, _, port = args.commit_port.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--commit-port '{args.commit_port}' is not a port (1-65535) or "
                             "HOST:PORT")
        args.commit_port = (host.strip("[]"), int(port))
    if args.commit_timeout <= 0:
        raise UsageError(f"--commit-timeout {args.commit_timeout} must be positive")
    return association, (association.parse_address(args.send) if args.send else None)


def _worklist_item(args: argparse.Namespace, association):
    """The one worklist item (``None`` without --worklist); refusals before any work."""
    if args.worklist is None:
        for option, given in (("--worklist-aet", args.worklist_aet),
                              ("--scheduled-station", args.scheduled_station)):
            if given:
                raise UsageError(f"{option} is only used with --worklist HOST:PORT")
        return None
    for option, given in (("--like", args.like), ("--patient-name", args.patient_name),
                          ("--study-uid", args.study_uid)):
        if given is not None:
            raise UsageError(f"{option} and --worklist both say who this is; the worklist "
                             "item gives it: leave out " + option)
    from endostream.dicom.net.worklist import WorklistKeys, query_worklist
    from endostream.dicom.values import checked, dicom_date
    called = args.worklist_aet or args.called_aet
    if called is None:
        raise UsageError("--worklist needs the worklist's AE title: --worklist-aet TITLE (or "
                         "--called-aet)")
    association.check_ae_title(called, "--worklist-aet")
    date = dicom_date(args.study_date.replace(" ", "T").split("T")[0], "--study-date") \
        if args.study_date else None
    keys = WorklistKeys(
        accession=checked(args.accession, "SH", "--accession") if args.accession else None,
        patient_id=checked(args.patient_id, "LO", "--patient-id") if args.patient_id else None,
        station_aet=args.aet if args.scheduled_station else None, date=date)
    if not (keys.accession or keys.patient_id or keys.station_aet):
        raise UsageError("--worklist needs a matching key: --accession, --patient-id (with "
                         "--study-date) or --scheduled-station")
    host, port = association.parse_address(args.worklist, "--worklist")
    return query_worklist(keys, host=host, port=port, calling_aet=args.aet,
                          called_aet=called, retries=args.retries)


def run(args: argparse.Namespace) -> int:
    require_dicom_extra()
    if args.sections.is_dir():
        return _send_again(args)
    from endostream.anatomy import load_anatomy
    from endostream.dicom.values import parse_date_time
    from endostream.dicom.write import planned_paths, write_procedure

    if args.out_dir is None:
        raise UsageError("--out-dir DIR is required: where the DICOM files go (or give an "
                         "export folder instead of SECTIONS to send it again)")
    association, address = _check_send_options(args)
    recorded = parse_date_time(args.study_date, "--study-date") if args.study_date else None
    anatomy = load_anatomy(args.anatomy_map)
    identity = identity_of(args, _worklist_item(args, association))
    if address is not None and identity.anonymous and not args.allow_anonymous:
        raise UsageError("--send without a patient identity: give --patient-id (or --like "
                         "exam.dcm, or --worklist), or --allow-anonymous to store anonymous "
                         "files")
    procedure = load_procedure(args.sections, args.video)
    video = procedure.require_video()
    # Checked against the sections (another run's CSV is refused) before --out-dir is made.
    frames = read_frames_csv(args.csv, procedure) if args.csv else None
    out_dir = check_output_dir(args.out_dir)
    paths = planned_paths(procedure, out_dir, with_video=args.with_video)
    check_outputs({f"--out-dir's {p.name}": p for p in paths},
                  {"an input": [p for p in (args.sections, video, args.csv, args.like) if p]},
                  overwrite=args.overwrite)
    existing = [p.name for p in paths if p.exists()]
    if existing and not args.overwrite:
        raise UsageError(f"{len(existing)} file(s) exist already in '{out_dir}' (e.g. "
                          f"'{existing[0]}'); pass --overwrite to replace them or choose "
                          "another --out-dir")
    written = write_procedure(procedure, frames, identity, out_dir, recorded=recorded,
                              with_video=args.with_video, anatomy=anatomy)
    say_written(written, identity, out_dir)
    if address is None:
        return 0
    return _send([w.path for w in written], args, address, out_dir)


def _send_again(args: argparse.Namespace) -> int:
    """SECTIONS is an export folder: send its files as they are, regenerating nothing."""
    from endostream.dicom.folder import export_files

    folder = args.sections
    for option, given in (("--out-dir", args.out_dir), ("--csv", args.csv),
                          ("--video", args.video), ("--like", args.like),
                          ("--worklist", args.worklist), ("--study-date", args.study_date),
                          ("--anatomy-map", args.anatomy_map),
                          ("--patient-id", args.patient_id),
                          ("--patient-name", args.patient_name),
                          ("--study-uid", args.study_uid), ("--accession", args.accession)):
        if given is not None:
            raise UsageError(f"{option} is for writing an export; '{folder}' is an export "
                             "folder, which is sent as it is (leave out " + option + ")")
    if args.with_video or args.overwrite:
        raise UsageError(f"'{folder}' is an export folder, sent as it is; --with-video and "
                         "--overwrite are for writing one")
    if args.send is None:
        raise UsageError(f"'{folder}' is a folder: give --send HOST:PORT to send the export "
                         "in it again, or a sections.json to write one")
    _, address = _check_send_options(args)
    files = export_files(folder)
    if not files:
        raise UsageError(f"'{folder}' holds no DICOM files (*.dcm); give the --out-dir of "
                         "an earlier 'endostream dicom'")
    print(f"sending {count(len(files), 'file')} of '{folder}' again (as written, same UIDs)",
          file=sys.stderr)
    return _send(files, args, address, folder)


def _send(files: list[Path], args: argparse.Namespace, address, out_dir: Path) -> int:
    from endostream.dicom.net.deliver import deliver

    host, port = address

    def said(path: Path, outcome: str) -> None:
        print(f"  {path.name}: {outcome}", file=sys.stderr)

    commit_host, commit_port = args.commit_port or ("", None)
    try:
        done = deliver(files, host=host, port=port, calling_aet=args.aet,
                       called_aet=args.called_aet, retries=args.retries,
                       commit_port=commit_port, commit_host=commit_host,
                       commit_timeout_s=args.commit_timeout, on_file=said)
    except SendError as e:
        raise SendError(f"{e}; the files are kept in '{out_dir}'") from None
    print(f"stored {count(done.stored, 'file')} at {done.where} ({done.check})",
          file=sys.stderr)
    return 0
