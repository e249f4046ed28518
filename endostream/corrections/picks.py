"""The reviewer's work list: ranked stretches as ``next.csv``, ``next.json`` and thumbnails.

:func:`gather` reads each analysed video (its sections file, the per-frame CSV of
``segment --csv``, the good-frame threshold its run used) into a
:class:`~endostream.corrections.uncertainty.FrameDoubt`; :func:`write_picks` writes what
:func:`~endostream.corrections.uncertainty.rank` chose:

- ``thumbs/NN-vK-MMmSSs.jpg``: the most doubtful good frame of pick NN (video K), 320
  pixels wide, fetched by seeking; named by rank and video number, never by the video's
  file name (folder and file names in clinics can carry patients' names);
- ``next.csv``: one row per pick, best first: ``rank, video, sections, clock, start_s,
  end_s, at_s, score, doubt, disagreement, context, why, section, model_says, top_organs,
  thumbnail``
  (``video`` and ``sections`` are the paths as given, for the reviewer to open);
- ``next.json`` (schema ``endostream.next/1``): the settings, the videos and the same
  picks.

Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from endostream.corrections.uncertainty import FrameDoubt, Stretch, frame_doubt
from endostream.output.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic
from endostream.output.table import format_clock
from endostream.procedure import Procedure, load_procedure, read_frames_csv
from endostream.procedure.thumbnails import jpeg_bytes, shrink
from endostream.procedure.video import grab_frames

#: Schema identifier of ``next.json``.
SCHEMA_ID = "endostream.next/1"
CSV_NAME, JSON_NAME, THUMBS_DIR = "next.csv", "next.json", "thumbs"
CSV_COLUMNS = ("rank", "video", "sections", "clock", "start_s", "end_s", "at_s", "score",
               "doubt", "disagreement", "context", "why", "section", "model_says",
               "top_organs", "thumbnail")


@dataclass(frozen=True)
class AnalysedVideo:
    """One input: its sections file, its per-frame CSV and the video (None: not found)."""

    sections: Path
    frames_csv: Path
    procedure: Procedure

    @property
    def video(self) -> Path | None:
        return self.procedure.video


def frames_csv_beside(sections: Path) -> Path:
    """Where ``segment`` puts the per-frame CSV of a sections file it names:
    ``a.sections.json`` → ``a.frames.csv``, ``a.mp4.sections.json`` → ``a.mp4.frames.csv``.

    >>> frames_csv_beside(Path("x/a.mp4.sections.json")).name
    'a.mp4.frames.csv'
    """
    name = sections.name
    stem = name[:-len(".sections.json")] if name.endswith(".sections.json") else sections.stem
    return sections.with_name(stem + ".frames.csv")


def gather(inputs: Sequence[tuple[Path, Path]]) -> tuple[list[AnalysedVideo], list[FrameDoubt]]:
    """Read every ``(sections file, frames CSV)`` pair; doubt per frame of each."""
    videos, doubts = [], []
    for k, (sections, frames_csv) in enumerate(inputs):
        procedure = load_procedure(sections)
        frames = read_frames_csv(frames_csv, procedure)  # refused if of another run
        videos.append(AnalysedVideo(sections, frames_csv, procedure))
        doubts.append(frame_doubt(frames, procedure.sections,
                                  good_at=procedure.document.analysis.good_threshold, video=k))
    return videos, doubts


def thumbnail_name(rank: int, pick: Stretch) -> str:
    minutes, seconds = divmod(int(pick.thumb_s), 60)
    return f"{rank:02d}-v{pick.video + 1}-{minutes:02d}m{seconds:02d}s.jpg"


def write_picks(out_dir: Path, videos: Sequence[AnalysedVideo], picks: Sequence[Stretch],
                settings: dict[str, Any], *, thumbnails: bool = True) -> dict[str, Any]:
    """Write thumbnails, ``next.csv`` and ``next.json`` into ``out_dir``; return the JSON."""
    names = [thumbnail_name(r, p) if thumbnails else "" for r, p in enumerate(picks, 1)]
    if thumbnails:
        (out_dir / THUMBS_DIR).mkdir(exist_ok=True)
        for v, video in enumerate(videos):
            mine = [r for r, p in enumerate(picks) if p.video == v]
            if not mine or video.video is None:
                continue
            grabbed = grab_frames(video.video, [picks[r].thumb_s for r in mine])
            for r, rgb in zip(mine, grabbed, strict=True):
                if rgb is None:
                    names[r] = ""
                    continue
                write_bytes_atomic(out_dir / THUMBS_DIR / names[r], jpeg_bytes(shrink(rgb)),
                                   hint="choose another --out-dir")
    rows = []
    for rank, (pick, thumb) in enumerate(zip(picks, names, strict=True), 1):
        video = videos[pick.video]
        d = asdict(pick)
        rows.append({
            "rank": rank,
            "video": str(video.video) if video.video is not None else "",
            "sections": str(video.sections),
            "clock": format_clock(pick.start_s),
            **{k: round(d[k], 3) for k in ("start_s", "end_s", "at_s", "thumb_s", "score",
                                            "doubt", "disagreement", "context")},
            "why": pick.why, "section": pick.section, "model_says": pick.model_says,
            "top_organs": pick.top_organs,
            "thumbnail": f"{THUMBS_DIR}/{thumb}" if thumb else "",
        })
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row[c] for c in CSV_COLUMNS])
    write_text_atomic(out_dir / CSV_NAME, out.getvalue(), hint="choose another --out-dir")
    doc = {"schema": SCHEMA_ID, "settings": settings,
           "videos": [{"sections": str(v.sections), "frames_csv": str(v.frames_csv),
                       "video": str(v.video) if v.video is not None else None}
                      for v in videos],
           "stretches": rows}
    write_json_atomic(out_dir / JSON_NAME, doc, hint="choose another --out-dir")
    return doc

