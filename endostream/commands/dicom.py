"""Write a procedure into the hospital record: DICOM files, optionally sent to a PACS.

Writes into --out-dir one VL Endoscopic Image per organ section (its most confident good
frame with --csv, else its middle frame, at the recording's full resolution) and one
Comprehensive SR document that lists every section (label, start, end, share of good
frames, confidence, the model's sha256) and references the images, all in one study;
with --with-video also the whole recording as a Video Endoscopic Image (H.264, copied
packet for packet where it qualifies). Patient and study identity come only from the
options below or from --like; never from the recording's file name or metadata. Without
them the files are marked anonymous. With --send the files are stored in an archive by
C-STORE, each status checked and each stored file looked up again with C-FIND where the
archive allows it; they stay in --out-dir whatever the archive answers. Needs the dicom
extra: pip install 'endostream[dicom]'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from endostream.commands.common import add_input_arguments
from endostream.commands.dicom_options import (
    INSTALL_HINT,
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
  endostream dicom sections.json --csv frames.csv --out-dir dicom/ \\
      --patient-id 12345 --patient-name 'Doe^Jane' --accession A2026-0042
  endostream dicom sections.json --out-dir dicom/ --like exam.dcm \\
      --send pacs.hospital.org:104 --aet ENDOSTREAM --called-aet PACS
  endostream dicom sections.json --out-dir anonymous/          # marked anonymous

exit codes: 0 done, 2 bad arguments (or --send without an identity, or files that exist
without --overwrite), 3 the recording is missing or unreadable, 5 output not writable,
10 the archive could not be reached, refused the association, or did not store every file
(the files stay in --out-dir)
"""


#: Left out of ``--help``, shown by ``--help-all`` and in docs/cli.md (endostream.cli).
RARE_OPTIONS = ["--aet", "--retries"]


def configure_parser(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                   help="where the DICOM files go (created if needed)")
    p.add_argument("--csv", type=Path, metavar="frames.csv",
                   help="the per-frame CSV of 'segment --csv': each section's most confident "
                        "good frame becomes its image (default: the section's middle frame)")
    p.add_argument("--with-video", action="store_true",
                   help="also the whole recording as a Video Endoscopic Image (H.264 copied "
                        "as it is where it qualifies, else re-encoded once; default: no)")
    add_overwrite_option(p, also=" (an earlier export's files in --out-dir)")
    add_identity_arguments(p)
    net = p.add_argument_group("sending (the only time endostream opens a connection)")
    net.add_argument("--send", metavar="HOST:PORT",
                     help="store the files in this archive with C-STORE (default: write only)")
    net.add_argument("--aet", default="ENDOSTREAM", metavar="TITLE",
                     help="our AE title, as the archive knows it (default: %(default)s)")
    net.add_argument("--called-aet", metavar="TITLE",
                     help="the archive's AE title (required with --send)")
    net.add_argument("--retries", type=int, default=3, metavar="N",
                     help="tries again when the archive refuses the association or cannot "
                          "be reached, pausing 1, 2, 3... s (default: %(default)s)")
    net.add_argument("--allow-anonymous", action="store_true",
                     help="send files without a patient identity (default: --send needs "
                          "--patient-id or --like, so that nothing lands unfiled in a PACS)")


def _check_send_options(args: argparse.Namespace):
    """The send module and the archive address, checked before any work."""
    if args.send is None:
        for option, given in (("--called-aet", args.called_aet is not None),
                              ("--allow-anonymous", args.allow_anonymous)):
            if given:
                raise UsageError(f"{option} is only used with --send HOST:PORT")
        return None, None
    try:
        from endostream.dicom import send
    except ImportError as e:
        raise UsageError(f"--send needs {INSTALL_HINT}; missing: {e.name}") from None
    if args.called_aet is None:
        raise UsageError("--send needs --called-aet TITLE: the archive's AE title (ask the "
                         "PACS administrator)")
    if args.retries < 0:
        raise UsageError(f"--retries {args.retries} is negative; give 0 or more")
    send.check_ae_title(args.aet, "--aet")
    send.check_ae_title(args.called_aet, "--called-aet")
    return send, send.parse_address(args.send)


def run(args: argparse.Namespace) -> int:
    require_dicom_extra()
    from endostream.dicom.write import planned_paths, write_procedure

    send, address = _check_send_options(args)
    identity = identity_of(args)
    if send is not None and identity.anonymous and not args.allow_anonymous:
        raise UsageError("--send without a patient identity: give --patient-id (or --like "
                         "exam.dcm), or --allow-anonymous to store anonymous files")
    procedure = load_procedure(args.sections, args.video)
    video = procedure.require_video()
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
    frames = read_frames_csv(args.csv) if args.csv else None
    written = write_procedure(procedure, frames, identity, out_dir,
                              with_video=args.with_video)
    say_written(written, identity, out_dir)
    if send is None:
        return 0
    host, port = address

    def said(path: Path, outcome: str) -> None:
        print(f"  {path.name}: {outcome}", file=sys.stderr)

    try:
        report = send.send_files([w.path for w in written], host=host, port=port,
                                 calling_aet=args.aet, called_aet=args.called_aet,
                                 retries=args.retries, on_file=said)
    except SendError as e:
        raise SendError(f"{e}; the files are kept in '{out_dir}'") from None
    if not report.complete:
        first, why = next(iter(report.failed.items()))
        raise SendError(f"the archive stored {len(report.stored)} of "
                        f"{count(len(written), 'file')}; not stored: {len(report.failed)} "
                        f"(e.g. {first.name}: {why}); the files are kept in '{out_dir}'")
    checked = (f"not verified: {report.unverified}" if report.unverified else
               "each found again by C-FIND")
    print(f"stored {count(len(report.stored), 'file')} at {args.called_aet}@{host}:{port} "
          f"({checked})", file=sys.stderr)
    return 0
