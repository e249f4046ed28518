"""docs/dicom.md's picture of what a PACS received: ``python -m tests.helpers.dicom_figure OUT.png``
(from the repository root, with the dicom extra and Debian's orthanc installed).

A generated 39 s procedure is segmented with the bundled demo model (``segment --csv``),
exported and sent with ``endostream dicom --send`` to a real Orthanc on free local ports,
and Orthanc's own rendering of each stored image (``/instances/ID/preview``) is tiled
with the labels Orthanc has for it (Image Comments), so the picture shows what the
archive holds, not what endostream meant to write.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from endostream.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.orthanc import ORTHANC_AET, start_orthanc  # noqa: E402

TILE_WIDTH = 320


def _tile(png: bytes, caption: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    img = cv2.resize(img, (TILE_WIDTH, round(h * TILE_WIDTH / w)), interpolation=cv2.INTER_AREA)
    # Large type: on a phone the row is shown about 390 px wide, a third of this.
    band = np.full((76, TILE_WIDTH, 3), 255, np.uint8)
    for k, line in enumerate(caption.split("|")):
        cv2.putText(band, line.strip(), (8, 30 + 34 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.85,
                    (30, 30, 30), 2, cv2.LINE_AA)
    return np.vstack([img, band])


def make_figure(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        video = d / "procedure.mp4"
        assert main(["synth", str(video), "--seed", "7"]) == 0
        assert main(["segment", str(video), "--out", str(d / "s.json"), "--csv",
                     str(d / "f.csv"), "--quiet"]) == 0
        orthanc = start_orthanc(d / "orthanc")
        try:
            assert main(["dicom", str(d / "s.json"), "--csv", str(d / "f.csv"), "--out-dir",
                         str(d / "dicom"), "--patient-id", "DEMO-0001", "--patient-name",
                         "Demo^Synthetic", "--send", f"127.0.0.1:{orthanc.dicom_port}",
                         "--called-aet", ORTHANC_AET]) == 0
            tiles = []
            for study in orthanc.get("/studies"):
                for series in orthanc.get(f"/studies/{study}/series"):
                    if series["MainDicomTags"]["Modality"] != "ES":
                        continue
                    for instance in series["Instances"]:
                        tags = orthanc.get(f"/instances/{instance}/simplified-tags")
                        # "... section 3: vocal_folds, 13.90-25.90 s, good 90 %, ..."
                        comment = tags["ImageComments"].split("section ", 1)[1]
                        label, span, good = comment.split(", ")[:3]
                        tiles.append((int(tags["InstanceNumber"]), _tile(
                            orthanc.get_bytes(f"/instances/{instance}/preview"),
                            f"{label.split(': ')[1]} {tags['Columns']}x{tags['Rows']} | "
                            f"{span}, {good}")))
        finally:
            orthanc.stop()
    row = np.hstack([t for _, t in sorted(tiles, key=lambda x: x[0])])
    cv2.imwrite(str(out), row, [cv2.IMWRITE_PNG_COMPRESSION, 9])


if __name__ == "__main__":
    make_figure(Path(sys.argv[1]))
