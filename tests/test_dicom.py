"""`endostream dicom`: key frames and sections as DICOM, validated, stored in a real Orthanc.

The procedure is the review tests' tiny clip (flat colours per section, the frame number
drawn in the top-left quarter), so each image can be checked for the section it shows,
the frame it was taken from and its full resolution. Files are validated with dciodvfy
(Debian's dicom3tools) and sent to Debian's Orthanc started on free local ports; each
part skips where its tool is not installed.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")
pytest.importorskip("pynetdicom")

from endostream.cli import main  # noqa: E402
from endostream.dicom.video import (  # noqa: E402
    h264_level,
    level_from_extradata,
    why_not_qualifying,
)
from endostream.errors import EXIT_SEND  # noqa: E402
from helpers.clips import encode_clip, read_index  # noqa: E402
from helpers.orthanc import ORTHANC_AET, free_port, orthanc_available, start_orthanc  # noqa: E402
from helpers.review import COLORS, FPS, HEIGHT, LAYOUT, WIDTH, frame_image, make_procedure  # noqa: E402

needs_orthanc = pytest.mark.skipif(not orthanc_available(),
                                   reason="Debian's orthanc is not installed")
needs_dciodvfy = pytest.mark.skipif(shutil.which("dciodvfy") is None,
                                    reason="dciodvfy (Debian's dicom3tools) is not installed")

#: dciodvfy warnings that remain, and why (anything else, and every error, fails):
EXPECTED_WARNINGS = (
    # Study Date and Time are type 2: the test clip has no creation time and no
    # --study-date, worklist or --like gives them; Study ID is the worklist's Requested
    # Procedure ID or --like's. endostream leaves them empty rather than invent them.
    "would be needed to build DICOMDIR - Study Date",
    "would be needed to build DICOMDIR - Study Time",
    "would be needed to build DICOMDIR - Study ID",
    # The SR's one local code (share of good frames, which no standard code means): a
    # 99-prefixed scheme is the standard's way to have it, described in Coding Scheme
    # Identification Sequence, which dciodvfy does not consult. Counted below: one per
    # section, none for anything a standard code exists for.
    "Unrecognized defined term <99ENDOSTREAM>",
    # dicom3tools (2022) does not know the Temporal Coordinates macro (PS3.3 C.18.7) in a
    # Comprehensive SR's content items, which the standard includes for Value Type TCOORD.
    "not present in standard DICOM IOD - (0x0040,0xa130) CS Temporal Range Type",
    "not present in standard DICOM IOD - (0x0040,0xa138) DS Referenced Time Offsets",
    "Dicom dataset contains attributes not present in standard DICOM IOD",
)
NOSE_PEAK_FRAME = 75  #: the frame the CSV makes the nose section's most confident one


@pytest.fixture
def procedure(tmp_path):
    """The tiny procedure under a file name and container tags that name a patient, and a
    CSV whose nose section is most confident at frame 75 (not its first frame)."""
    t = make_procedure(tmp_path / "in", name="smith_john_1970.mp4",
                       metadata={"title": "Smith^John", "comment": "patient 987654",
                                 "artist": "Dr Who"})
    rows = list(csv.reader(t.csv.open()))
    col = rows[0].index("organ_nose")
    for r in rows[1:]:
        if int(r[0]) == NOSE_PEAK_FRAME:
            r[col] = "0.9900"
    with t.csv.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return t


def export(procedure, out: Path, *extra: str) -> int:
    return main(["dicom", str(procedure.sections), "--csv", str(procedure.csv),
                 "--out-dir", str(out), *extra])


def read_all(out: Path) -> dict[str, pydicom.Dataset]:
    return {p.name: pydicom.dcmread(p) for p in sorted(out.glob("*.dcm"))}


def test_key_frames_full_resolution_and_one_document_in_one_study(procedure, tmp_path):
    out = tmp_path / "dicom"
    assert export(procedure, out, "--patient-id", "12345", "--patient-name", "Doe^Jane",
                  "--accession", "A7") == 0
    files = read_all(out)
    organ_sections = [(i, s) for i, s in enumerate(LAYOUT, 1) if s[0] != "unusable"]
    assert len(files) == len(organ_sections) + 1
    images = [ds for ds in files.values() if ds.Modality == "ES"]
    (sr,) = [ds for ds in files.values() if ds.Modality == "SR"]
    assert {ds.SOPClassUID for ds in images} == {"1.2.840.10008.5.1.4.1.1.77.1.1"}
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    # One study, one series per kind, identity from the options only.
    assert len({ds.StudyInstanceUID for ds in files.values()}) == 1
    assert len({ds.SeriesInstanceUID for ds in images}) == 1
    assert sr.SeriesInstanceUID != images[0].SeriesInstanceUID
    for ds in files.values():
        assert (ds.PatientID, str(ds.PatientName), ds.AccessionNumber) == ("12345", "Doe^Jane",
                                                                          "A7")
        assert "PatientIdentityRemoved" not in ds
        assert (ds.Manufacturer, ds.ManufacturerModelName) == ("endostream", "endostream")
        assert ds.SoftwareVersions == "0.1.0"
    # Each image: its section's colour, full resolution, the CSV's most confident frame.
    for ds, (number, (label, first, _last)) in zip(images, organ_sections, strict=True):
        assert (ds.Rows, ds.Columns, ds.PhotometricInterpretation) == (HEIGHT, WIDTH, "RGB")
        pixels = ds.pixel_array
        assert np.abs(pixels[-20:, -40:].reshape(-1, 3).mean(0) - COLORS[label]).max() < 12
        frame = read_index(pixels[: HEIGHT // 2, : WIDTH // 2])
        assert frame == (NOSE_PEAK_FRAME if label == "nose" else first)
        assert ds.ImageType == ["DERIVED", "PRIMARY"] and ds.LossyImageCompression == "01"
        assert ds.LossyImageCompressionMethod == "ISO_14496_10"
        assert f"section {number}: {label}" in ds.ImageComments


def _items(ds) -> list:
    out = []
    for item in ds.get("ContentSequence", []):
        out.append(item)
        out += _items(item)
    return out


def _section_of(container) -> dict:
    found = {}
    for item in container.ContentSequence:
        name = item.ConceptNameCodeSequence[0].CodeMeaning
        if item.ValueType == "TEXT":
            found[name] = item.TextValue
        elif item.ValueType == "NUM":
            value = item.MeasuredValueSequence[0]
            found[name] = (float(value.NumericValue),
                           value.MeasurementUnitsCodeSequence[0].CodeValue)
        elif item.ValueType == "IMAGE":
            found[name] = item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        elif item.ValueType == "CODE":
            code = item.ConceptCodeSequence[0]
            found[name] = (code.CodeValue, code.CodingSchemeDesignator)
        elif item.ValueType == "TCOORD":
            offsets = item.ReferencedTimeOffsets
            offsets = list(offsets) if item["ReferencedTimeOffsets"].VM > 1 else [offsets]
            found.setdefault("TCOORD", []).append(
                (item.TemporalRangeType, [float(v) for v in offsets],
                 item.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
    return found


def test_the_document_lists_every_section_with_numbers_and_its_key_frame(procedure, tmp_path):
    out = tmp_path / "dicom"
    assert export(procedure, out, "--patient-id", "1") == 0
    files = read_all(out)
    sr = files.pop("sections-sr.dcm")
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "UNVERIFIED")
    texts = {i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue
             for i in sr.ContentSequence if i.ValueType == "TEXT"}
    assert texts["Algorithm Parameters"] == "model sha256 " + "0" * 64
    assert texts["Algorithm Name"] == "endostream" and "not a diagnosis" in texts["Comment"]
    sections = [_section_of(i) for i in sr.ContentSequence if i.ValueType == "CONTAINER"]
    assert [s["Short Label"] for s in sections] == [label for label, _, _ in LAYOUT]
    by_uid = {ds.SOPInstanceUID: name for name, ds in files.items()}
    sites = {"ear": ("28347008", "SCT"), "nose": ("45206002", "SCT"),
             "vocal_folds": ("4596009", "SCT")}
    for s, (label, first, last) in zip(sections, LAYOUT, strict=True):
        assert s["Beginning of Time Period"] == (pytest.approx(first / 25), "s")
        assert s["End of Time Period"] == (pytest.approx((last + 1) / 25), "s")
        assert s["Share of good frames"][1] == "%" and s["Probability"][1] == "1"
        if label == "unusable":
            assert s["Quality Finding"] == ("111235", "DCM")
        else:
            assert s["Finding Site"] == sites[label]
        if label == "unusable":
            assert "Best illustration of finding" not in s
        else:
            assert by_uid[s["Best illustration of finding"]].endswith(f"-{label}-"
                                                                       f"{first / 25:.1f}s.dcm")
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == sr.StudyInstanceUID
    assert {r.ReferencedSOPInstanceUID for s in evidence.ReferencedSeriesSequence
            for r in s.ReferencedSOPSequence} == set(by_uid)


def test_nothing_identifying_comes_from_file_names_or_metadata(procedure, tmp_path, capsys):
    out = tmp_path / "dicom"
    assert export(procedure, out) == 0
    err = capsys.readouterr().err
    assert "marked anonymous" in err
    for path in out.iterdir():
        assert "smith" not in path.name.lower()
        data = path.read_bytes().lower()
        for word in (b"smith", b"john", b"dr who"):
            assert word not in data, (path.name, word)
        ds = pydicom.dcmread(path)
        texts: list[str] = []  # every value but UIDs (random digits may hold any number)
        ds.walk(lambda _, elem, texts=texts: texts.append(str(elem.value))
                if elem.VR not in ("UI", "SQ", "OB", "OW") else None)
        assert not [t for t in texts if "987654" in t or "1970" in t], path.name
        assert (str(ds.PatientName), ds.PatientIdentityRemoved) == ("ANONYMOUS^", "YES")
        assert ds.PatientID.startswith("ANON-") and ds.DeidentificationMethod
    assert "smith" not in err.lower()


def write_exam(path: Path) -> Path:
    """A DICOM file of "the same exam", as another modality of the hospital wrote it."""
    exam = pydicom.Dataset()
    exam.PatientName, exam.PatientID, exam.PatientBirthDate = "Roe^Ann", "P9", "19800102"
    exam.StudyInstanceUID, exam.StudyDate, exam.StudyTime = "1.2.3.4.5", "20261201", "101500"
    exam.StudyID, exam.AccessionNumber, exam.Modality = "S1", "ACC1", "ES"
    exam.SOPClassUID, exam.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.77.1.1", "1.2.3.4.5.6"
    exam.file_meta = pydicom.dataset.FileMetaDataset()
    exam.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    exam.save_as(path, enforce_file_format=True)
    return path


def test_like_copies_patient_and_study_and_options_win(procedure, tmp_path):
    like = write_exam(tmp_path / "exam.dcm")
    out = tmp_path / "dicom"
    assert export(procedure, out, "--like", str(like), "--accession", "ACC2") == 0
    for ds in read_all(out).values():
        assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate) == ("P9", "Roe^Ann",
                                                                            "19800102")
        assert (ds.StudyInstanceUID, ds.StudyDate, ds.StudyID) == ("1.2.3.4.5", "20261201", "S1")
        assert ds.AccessionNumber == "ACC2" and ds.SOPInstanceUID != "1.2.3.4.5.6"


def video_stream(ds) -> bytes:
    """The H.264 stream in a Video Endoscopic Image (after the empty offset table)."""
    fragments = list(pydicom.encaps.generate_fragments(ds.PixelData))
    assert len(fragments) == 2 and fragments[0] == b""  # one fragment, empty offset table
    return fragments[1]


def decoded_indices(stream: bytes) -> list[int]:
    with av.open(io.BytesIO(stream), format="h264") as c:
        return [read_index(f.to_ndarray(format="rgb24")[: HEIGHT // 2, : WIDTH // 2])
                for f in c.decode(video=0)]


def test_with_video_copies_a_qualifying_recording_packet_for_packet(procedure, tmp_path,
                                                                    capsys):
    out = tmp_path / "dicom"
    assert export(procedure, out, "--patient-id", "1", "--with-video") == 0
    assert "H.264 copied as it is" in capsys.readouterr().err
    ds = pydicom.dcmread(out / "recording-video.dcm")
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.1.1"
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.MPEG4HP41
    assert (ds.NumberOfFrames, ds.Rows, ds.Columns) == (LAYOUT[-1][2] + 1, HEIGHT, WIDTH)
    assert ds.ImageType[0] == "ORIGINAL" and ds.FrameTime == pytest.approx(1000 / FPS)
    assert ds.StudyInstanceUID == pydicom.dcmread(out / "sections-sr.dcm").StudyInstanceUID
    stream = video_stream(ds)
    assert stream.startswith(b"\x00\x00\x00\x01")  # Annex B start codes
    assert decoded_indices(stream) == list(range(LAYOUT[-1][2] + 1))
    # The recording's own packets: decoded, every pixel equals the recording's (a re-encode,
    # however fine, would not).
    with av.open(str(procedure.video)) as a, av.open(io.BytesIO(stream), format="h264") as b:
        for fa, fb in zip(a.decode(video=0), b.decode(video=0), strict=True):
            assert np.array_equal(fa.to_ndarray(format="yuv420p"), fb.to_ndarray(format="yuv420p"))


def test_with_video_re_encodes_a_recording_that_does_not_qualify(procedure, tmp_path, capsys):
    ffv1 = tmp_path / "lossless.mkv"
    with av.open(str(ffv1), "w") as outc:
        vs = outc.add_stream("ffv1", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        for i in range(LAYOUT[-1][2] + 1):
            for packet in vs.encode(av.VideoFrame.from_ndarray(frame_image(i), format="rgb24")):
                outc.mux(packet)
        for packet in vs.encode():
            outc.mux(packet)
    out = tmp_path / "dicom"
    assert main(["dicom", str(procedure.sections), "--video", str(ffv1), "--out-dir", str(out),
                 "--with-video"]) == 0
    assert "re-encoded to H.264 High Profile 4.1 because its codec is ffv1" in \
        capsys.readouterr().err
    ds = pydicom.dcmread(out / "recording-video.dcm")
    assert ds.ImageType[0] == "DERIVED" and ds.NumberOfFrames == LAYOUT[-1][2] + 1
    stream = video_stream(ds)
    with av.open(io.BytesIO(stream), format="h264") as c:
        cc = c.streams.video[0].codec_context
        assert (cc.profile, cc.pix_fmt) == ("High", "yuv420p") and h264_level(cc) <= 41
    assert decoded_indices(stream) == list(range(LAYOUT[-1][2] + 1))


@pytest.mark.parametrize("level", ["3.1", "5.1"])
def test_the_h264_level_is_read_from_the_stream_itself(tmp_path, level):
    # PyAV has a codec level field only from 18.1; older PyAV (the floor is 16) relies on
    # reading the sequence parameter set, so both ways must agree on a real encode.
    idc = int(level.replace(".", ""))
    path = encode_clip(tmp_path / "l.mp4", [frame_image(0)] * 3, options={"level": level})
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        avcc = bytes(stream.codec_context.extradata)
        assert h264_level(stream.codec_context) == idc
        assert getattr(stream.codec_context, "level", idc) == idc
        why = why_not_qualifying(stream)
    assert level_from_extradata(avcc) == idc
    sps = avcc[8:8 + int.from_bytes(avcc[6:8], "big")]  # the avcC record's first SPS
    assert level_from_extradata(b"\x00\x00\x00\x01" + sps) == idc
    assert level_from_extradata(b"\x00\x00\x01\x68\xce\x38\x80") is None  # a PPS only
    assert why == (None if idc <= 41 else "its H.264 level is 5.1, above 4.1")


@needs_dciodvfy
@pytest.mark.parametrize("identity", ["anonymous", "like"])
def test_every_file_passes_dciodvfy(procedure, tmp_path, identity):
    extra = ["--with-video"]
    if identity == "like":
        extra += ["--like", str(write_exam(tmp_path / "exam.dcm"))]
    out = tmp_path / "dicom"
    assert export(procedure, out, *extra) == 0
    for path in sorted(out.glob("*.dcm")):
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                                timeout=60)
        lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
        iod = {"sections-sr.dcm": "ComprehensiveSR", "recording-video.dcm":
               "VideoEndoscopicImage"}.get(path.name, "VLEndoscopicImage")
        assert iod in lines, lines
        assert not [ln for ln in lines if ln.startswith("Error")], (path.name, lines)
        unexplained = [ln for ln in lines if ln.startswith("Warning")
                       and not any(w in ln for w in EXPECTED_WARNINGS)]
        assert unexplained == [], (path.name, unexplained)
        # the share of good frames of each section, and the scheme's own description
        private = [ln for ln in lines if "99ENDOSTREAM" in ln]
        assert len(private) == (len(LAYOUT) + 1 if path.name == "sections-sr.dcm" else 0)
        if identity == "like":  # the study's date, time and ID are there: no DICOMDIR note
            assert not [ln for ln in lines if "DICOMDIR" in ln], lines


def test_bad_requests_get_one_line_and_their_exit_code(procedure, tmp_path, capsys):
    out = tmp_path / "dicom"
    runs = [
        (["--send", "127.0.0.1:104", "--called-aet", "PACS"], 2),  # no identity
        (["--patient-id", "1", "--send", "nohost", "--called-aet", "PACS"], 2),
        (["--patient-id", "1", "--send", "127.0.0.1:104"], 2),  # no --called-aet
        (["--patient-id", "1", "--send", "127.0.0.1:104", "--called-aet", "A" * 17], 2),
        (["--called-aet", "PACS"], 2),  # only with --send
        (["--study-uid", "1.2.abc"], 2),
        (["--like", str(procedure.csv)], 2),
        (["--patient-id", " "], 2),
    ]
    for extra, code in runs:
        assert export(procedure, out, *extra) == code, extra
    assert not out.exists() or not list(out.iterdir())  # refused before any file
    procedure.video.rename(tmp_path / "moved.mp4")
    assert export(procedure, out) == 3  # a sections file without its video
    assert main(["dicom", str(procedure.sections), "--out-dir", str(out),
                 "--video", str(tmp_path / "moved.mp4")]) == 0
    assert main(["dicom", str(procedure.sections), "--out-dir", str(out),
                 "--video", str(tmp_path / "moved.mp4")]) == 2  # exists: --overwrite
    assert main(["dicom", str(procedure.sections), "--out-dir", str(out), "--overwrite",
                 "--video", str(tmp_path / "moved.mp4")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("endostream: error:") == len(runs) + 2


def test_an_unreachable_archive_exits_10_and_keeps_the_files(procedure, tmp_path, capsys):
    assert EXIT_SEND == 10  # as the README's table and --help say
    out = tmp_path / "dicom"
    port = free_port()  # nothing listens there
    assert export(procedure, out, "--patient-id", "1", "--send", f"127.0.0.1:{port}",
                  "--called-aet", "PACS", "--retries", "1") == EXIT_SEND
    err = capsys.readouterr().err
    assert "no connection could be made" in err and "2 tries" in err and "kept in" in err
    assert len(list(out.glob("*.dcm"))) == 4 and "Traceback" not in err


@needs_orthanc
def test_orthanc_receives_study_series_pixels_and_document(procedure, tmp_path, capsys):
    out = tmp_path / "dicom"
    orthanc = start_orthanc(tmp_path / "orthanc")
    try:
        assert export(procedure, out, "--patient-id", "12345", "--patient-name", "Doe^Jane",
                      "--with-video", "--send", f"127.0.0.1:{orthanc.dicom_port}", "--aet",
                      "ENDOSTREAM", "--called-aet", ORTHANC_AET) == 0
        err = capsys.readouterr().err
        assert "stored 5 files" in err and "each found again by C-FIND" in err
        files = read_all(out)
        (study,) = orthanc.get("/studies")
        tags = orthanc.get(f"/studies/{study}")
        sr = files["sections-sr.dcm"]
        assert tags["MainDicomTags"]["StudyInstanceUID"] == sr.StudyInstanceUID
        assert tags["PatientMainDicomTags"]["PatientID"] == "12345"
        series = {s["MainDicomTags"]["SeriesDescription"]: s
                  for s in orthanc.get(f"/studies/{study}/series")}
        assert {name: len(s["Instances"]) for name, s in series.items()} == {
            "endostream key frames": 3, "endostream sections": 1, "endostream recording": 1}
        stored = {orthanc.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"]: i
                  for s in series.values() for i in s["Instances"]}
        assert set(stored) == {ds.SOPInstanceUID for ds in files.values()}
        for ds in files.values():
            back = pydicom.dcmread(__import__("io").BytesIO(
                orthanc.get_bytes(f"/instances/{stored[ds.SOPInstanceUID]}/file")))
            raw = orthanc.get_bytes(f"/instances/{stored[ds.SOPInstanceUID]}/frames/0/raw") \
                if ds.Modality == "ES" else b""
            if ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.1.1":  # the video, intact
                assert raw == video_stream(ds) and back.PixelData == ds.PixelData
            elif ds.Modality == "ES":  # the pixels arrived bit for bit
                assert raw == ds.PixelData == back.PixelData
            else:  # the document arrived intact
                assert back.ContentSequence == ds.ContentSequence
                assert _section_of(back.ContentSequence[5])["Short Label"] == "ear"
    finally:
        orthanc.stop()


@needs_orthanc
def test_an_archive_without_c_find_stores_but_says_unverified(procedure, tmp_path, capsys):
    orthanc = start_orthanc(tmp_path / "orthanc", allow_find=False)
    try:
        assert export(procedure, tmp_path / "dicom", "--patient-id", "1", "--send",
                      f"127.0.0.1:{orthanc.dicom_port}", "--called-aet", ORTHANC_AET) == 0
        assert "stored 4 files" in (err := capsys.readouterr().err) and "not verified" in err
        assert len(orthanc.get("/instances")) == 4
    finally:
        orthanc.stop()


@needs_orthanc
def test_a_permanent_refusal_fails_at_once_naming_the_ae_title(procedure, tmp_path, capsys):
    out = tmp_path / "dicom"
    orthanc = start_orthanc(tmp_path / "orthanc")
    try:
        t0 = time.monotonic()
        assert export(procedure, out, "--patient-id", "1", "--send",
                      f"127.0.0.1:{orthanc.dicom_port}", "--called-aet", "NOTORTHANC",
                      "--retries", "3") == EXIT_SEND
        assert time.monotonic() - t0 < 20  # no 1 + 2 + 3 s of pauses: not tried again
        err = capsys.readouterr().err
        assert "permanently rejected the association" in err
        assert "does not know the called AE title 'NOTORTHANC'" in err
        assert "tries" not in err and "1 try" not in err
        assert err.count("endostream: error:") == 1 and "Traceback" not in err
        assert orthanc.get("/instances") == [] and len(list(out.glob("*.dcm"))) == 4
    finally:
        orthanc.stop()


@needs_orthanc
def test_instances_the_archive_refuses_are_reported_not_lost(procedure, tmp_path, capsys):
    """Orthanc's own filter discards the SR: reported as not stored, exit 10."""
    lua = ("function ReceivedInstanceFilter(dicom, origin, info)\n"
           "  return dicom.Modality ~= 'SR'\nend\n")
    out = tmp_path / "dicom"
    orthanc = start_orthanc(tmp_path / "orthanc", lua=lua)
    try:
        assert export(procedure, out, "--patient-id", "1", "--send",
                      f"127.0.0.1:{orthanc.dicom_port}",
                      "--called-aet", ORTHANC_AET) == EXIT_SEND
        err = capsys.readouterr().err
        # Orthanc 1.10 answers success for what its filter discards; the C-FIND after the
        # stores finds it missing.
        assert "stored 3 of 4 files" in err and "C-FIND finds no such instance" in err
        assert len(orthanc.get("/instances")) == 3 and (out / "sections-sr.dcm").is_file()
    finally:
        orthanc.stop()


@needs_orthanc
def test_an_archive_that_comes_up_during_the_retries_gets_everything(procedure, tmp_path):
    port = free_port()
    started: list = []
    timer = threading.Timer(1.0, lambda: started.append(
        start_orthanc(tmp_path / "orthanc", dicom_port=port)))
    t0 = time.monotonic()
    timer.start()
    try:
        assert export(procedure, tmp_path / "dicom", "--patient-id", "1", "--send",
                      f"127.0.0.1:{port}", "--called-aet", ORTHANC_AET) == 0
        assert time.monotonic() - t0 >= 1.0  # the first try found nothing there
        timer.join()
        assert len(started[0].get("/instances")) == 4
    finally:
        timer.cancel()
        timer.join()
        for server in started:
            server.stop()


def test_segment_dicom_out_writes_the_same_files_in_the_analysis_run(tmp_path, capsys):
    """segment --dicom-out: key frames from this run's probabilities, the document from
    the sections just written; identity options only with it; archives refused."""
    from endostream.synth import ProcedureSpec, render_procedure
    from endostream.synth.scenes import SCENE_MEAN_RGB
    from helpers.onnx_models import build_color_model

    video = tmp_path / "procedure.mp4"
    render_procedure(video, ProcedureSpec.parse("nose:4,black:3,vocal_folds:4"), width=160,
                     height=120, fps=10.0, seed=1)
    model = build_color_model(tmp_path / "m.onnx", organ_colors=SCENE_MEAN_RGB)
    out = tmp_path / "dicom"
    assert main(["segment", str(video), "--models", str(model), "--out",
                 str(tmp_path / "s.json"), "--quiet", "--dicom-out", str(out),
                 "--patient-id", "P1"]) == 0
    files = read_all(out)
    sr = files.pop("sections-sr.dcm")
    assert [name.split("-")[1] for name in sorted(files)] == ["nose", "vocal_folds"]
    for name, ds in files.items():
        label = name.split("-")[1]
        assert (ds.PatientID, ds.Rows, ds.Columns) == ("P1", 120, 160)
        h, w = ds.Rows, ds.Columns
        mean = ds.pixel_array[h // 3: 2 * h // 3, w // 3: 2 * w // 3].reshape(-1, 3).mean(0)
        assert min(SCENE_MEAN_RGB, key=lambda o: np.abs(mean - SCENE_MEAN_RGB[o]).sum()) == label
    texts = [i.TextValue for i in _items(sr) if i.ValueType == "TEXT"]
    assert "model sha256 " + __import__("hashlib").sha256(model.read_bytes()).hexdigest() in texts
    capsys.readouterr()
    assert main(["segment", str(video), "--models", str(model), "--out",
                 str(tmp_path / "t.json"), "--patient-id", "P1"]) == 2
    assert main(["segment", str(video), str(video), "--models", str(model), "--out-dir",
                 str(tmp_path / "arch"), "--dicom-out", str(out)]) == 2
    assert main(["segment", str(video), "--models", str(model), "--out",
                 str(tmp_path / "u.json"), "--dicom-out", str(out)]) == 2  # files there
    err = capsys.readouterr().err
    assert err.count("endostream: error:") == 3 and "only used with --dicom-out" in err
    assert not (tmp_path / "t.json").exists() and not (tmp_path / "u.json").exists()
