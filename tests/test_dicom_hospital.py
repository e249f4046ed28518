"""`endostream dicom` the way a hospital runs it (issue 31): identity from a Modality
Worklist, values checked before anything is written, UIDs a retry derives again, Storage
Commitment, coded anatomy, the recording's time, and the SR pointing into the video.

Everything network-facing runs against Debian's Orthanc (its Modality Worklist plugin for
the worklist, its Storage Commitment SCP, which opens an association back to our listener
for the report); files are checked with dciodvfy. Each part skips where its tool is not
installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pydicom = pytest.importorskip("pydicom")
pytest.importorskip("highdicom")
pytest.importorskip("pynetdicom")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402

from endostream.cli import main  # noqa: E402
from endostream.errors import EXIT_SEND, EXIT_USAGE  # noqa: E402
from helpers.clips import read_index  # noqa: E402
from helpers.orthanc import (  # noqa: E402
    ORTHANC_AET,
    free_port,
    orthanc_available,
    start_orthanc,
    worklist_plugin_available,
)
from helpers.review import FPS, HEIGHT, LAYOUT, WIDTH, make_procedure  # noqa: E402

needs_orthanc = pytest.mark.skipif(not orthanc_available(),
                                   reason="Debian's orthanc is not installed")
needs_worklist = pytest.mark.skipif(not worklist_plugin_available(),
                                    reason="Orthanc's Modality Worklist plugin is not installed")
needs_dciodvfy = pytest.mark.skipif(shutil.which("dciodvfy") is None,
                                    reason="dciodvfy (Debian's dicom3tools) is not installed")

RECORDED = "2026-11-30T09:15:00.000000Z"  #: the clip's container creation time (UTC)
NON_ASCII = "Müller-Łukasz^Zoë=ミュラー^ゾエ"
SITES = {"ear": ("28347008", "EAR"), "nose": ("45206002", "NOSE"),
         "vocal_folds": ("4596009", "LARYNX")}


@pytest.fixture
def procedure(tmp_path):
    return make_procedure(tmp_path / "in", metadata={"creation_time": RECORDED})


def export(procedure, out: Path, *extra: str, csv: bool = True) -> int:
    return main(["dicom", str(procedure.sections), "--out-dir", str(out),
                 *(["--csv", str(procedure.csv)] if csv else []), *extra])


def read_all(out: Path) -> dict[str, Dataset]:
    return {p.name: pydicom.dcmread(p) for p in sorted(out.glob("*.dcm"))}


def dciodvfy_errors(path: Path) -> list[str]:
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("Error")]


# --- values checked before anything is written --------------------------------------------

@pytest.mark.parametrize("extra, says", [
    (["--patient-id", "1", "--patient-name", "Doe\\Jane"], "has a backslash"),
    (["--patient-id", "1", "--patient-name", "A" * 100], "at most 64 per name"),
    (["--patient-id", "7" * 70], "--patient-id is 70 characters long; DICOM's LO allows at "
                                 "most 64"),
    (["--patient-id", "1", "--accession", "A" * 21], "--accession is 21 characters long"),
    (["--patient-id", "1\t2"], "control character"),
    (["--patient-id", "1", "--patient-name", "A^B^C^D^E^F"], "6 components"),
    (["--study-date", "2026-13-01"], "is not a date"),
    (["--study-date", "2026-12-01T25:00"], "the time is not HH:MM"),
    (["--patient-id", "1", "--send", "127.0.0.1:104", "--called-aet", "PACS",
      "--aet", "BAD\\AET"], "is not an AE title"),
    (["--study-uid", "1.02.3"], "not a valid DICOM UID"),
])
def test_a_value_dicom_does_not_allow_is_refused_in_one_line_with_nothing_written(
        procedure, tmp_path, capsys, extra, says):
    out = tmp_path / "dicom"
    assert export(procedure, out, *extra) == EXIT_USAGE
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and err.startswith("endostream: error:")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in"]  # no temporary folder either


@needs_dciodvfy
def test_a_non_ascii_name_is_written_in_utf8_and_reads_back_equal(procedure, tmp_path, capsys):
    out = tmp_path / "dicom"
    assert export(procedure, out, "--patient-id", "P1", "--patient-name", NON_ASCII) == 0
    err = capsys.readouterr().err
    assert "Warning" not in err and "warn" not in err.lower()  # nothing raw from a library
    for path, ds in read_all(out).items():
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert str(ds.PatientName) == NON_ASCII
        assert NON_ASCII.split("=")[0].encode("utf-8") in (out / path).read_bytes()
        assert dciodvfy_errors(out / path) == [], path


def test_a_failure_part_way_leaves_the_folder_as_it_was(procedure, tmp_path, capsys):
    """The video part fails (a recording over 1920x1080 cannot be re-encoded to Level 4.1)
    after the key frames and the document were written: none of them reaches --out-dir."""
    import av
    import numpy as np

    big = tmp_path / "big.mkv"
    with av.open(str(big), "w") as c:
        vs = c.add_stream("ffv1", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 2048, 64, "yuv444p"
        for i in range(LAYOUT[-1][2] + 1):
            frame = av.VideoFrame.from_ndarray(np.full((64, 2048, 3), i, np.uint8), "rgb24")
            for p in vs.encode(frame):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)
    out = tmp_path / "dicom"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["dicom", str(procedure.sections), "--video", str(big), "--out-dir", str(out),
                 "--with-video"]) == EXIT_USAGE
    assert "at most 1920x1080" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.mkv", "dicom", "in"]


# --- deterministic UIDs --------------------------------------------------------------------

def test_the_same_inputs_give_the_same_uids_and_corrected_sections_a_new_sr_series(
        procedure, tmp_path):
    out = tmp_path / "dicom"
    assert export(procedure, out, "--patient-id", "P1") == 0
    first = read_all(out)
    assert export(procedure, out, "--patient-id", "P1", "--overwrite") == 0
    again = read_all(out)
    assert {n: (d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID)
            for n, d in first.items()} == \
        {n: (d.StudyInstanceUID, d.SeriesInstanceUID, d.SOPInstanceUID) for n, d in again.items()}
    # A corrected sections file: the nose section was really the ear.
    doc = json.loads(procedure.sections.read_text())
    doc["sections"][2]["label"] = "ear"
    procedure.sections.write_text(json.dumps(doc))
    assert export(procedure, out, "--patient-id", "P1", "--overwrite", csv=False) == 0
    fixed = read_all(out)
    assert "03-nose-2.4s.dcm" not in fixed and "03-ear-2.4s.dcm" in fixed  # no stale file
    old_sr, new_sr = first["sections-sr.dcm"], fixed["sections-sr.dcm"]
    assert new_sr.StudyInstanceUID == old_sr.StudyInstanceUID
    assert new_sr.SeriesInstanceUID != old_sr.SeriesInstanceUID
    assert new_sr.SOPInstanceUID != old_sr.SOPInstanceUID
    (pre,) = new_sr.PredecessorDocumentsSequence
    assert pre.StudyInstanceUID == old_sr.StudyInstanceUID
    assert pre.ReferencedSeriesSequence[0].SeriesInstanceUID == old_sr.SeriesInstanceUID
    assert pre.ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID == old_sr.SOPInstanceUID
    # The key frame series is the recording's: the same one.
    assert fixed["01-ear-0.0s.dcm"].SeriesInstanceUID == first["01-ear-0.0s.dcm"].SeriesInstanceUID


# --- coded anatomy, time, and the SR pointing into the video ------------------------------

def _content(ds) -> list:
    out = []
    for item in ds.get("ContentSequence", []):
        out.append(item)
        out += _content(item)
    return out


@needs_dciodvfy
def test_anatomy_time_and_temporal_coordinates(procedure, tmp_path):
    out = tmp_path / "dicom"
    assert export(procedure, out, "--patient-id", "P1", "--with-video") == 0
    files = read_all(out)
    video, sr = files.pop("recording-video.dcm"), files.pop("sections-sr.dcm")
    organ_sections = [(i, s) for i, s in enumerate(LAYOUT, 1) if s[0] != "unusable"]
    from datetime import datetime, timedelta, timezone
    start = datetime(2026, 11, 30, 9, 15, tzinfo=timezone.utc).astimezone().replace(tzinfo=None)
    day, clock = start.strftime("%Y%m%d"), start.strftime("%H%M%S")
    for ds in [video, sr, *files.values()]:  # the recording's date, never the export's
        assert (ds.StudyDate, ds.StudyTime[:6], ds.SeriesDate) == (day, clock, day)
    assert (sr.ContentDate, sr.ContentTime[:6]) == (day, clock)
    key_times = {}
    for ds, (_, (label, _first, _last)) in zip(files.values(), organ_sections, strict=True):
        (region,) = ds.AnatomicRegionSequence
        assert (region.CodeValue, region.CodingSchemeDesignator) == (SITES[label][0], "SCT")
        assert ds.BodyPartExamined == "HEADNECK"  # the series' parts: ear, nose, larynx
        assert "Laterality" not in ds  # the series shows several parts: Head and Neck
        (source,) = ds.SourceImageSequence
        assert source.ReferencedSOPInstanceUID == video.SOPInstanceUID
        frame = read_index(ds.pixel_array[: HEIGHT // 2, : WIDTH // 2])
        assert source.ReferencedFrameNumber == frame + 1  # 1-based, the decoded frame
        t = frame / FPS
        assert ds.AcquisitionDateTime.startswith((start + timedelta(seconds=t))
                                                 .strftime("%Y%m%d%H%M%S"))
        assert "most confident good frame of its section (per-frame CSV)" in \
            ds.DerivationDescription and f"frame {frame + 1} at {t:.3f} s" in \
            ds.DerivationDescription
        key_times[ds.SOPInstanceUID] = t
    assert video.BodyPartExamined == "HEADNECK" and "Laterality" not in video
    # Each section: a SEGMENT over its time and a POINT at its key frame, in the video.
    findings = [i for i in sr.ContentSequence if i.ValueType == "CONTAINER"]
    assert len(findings) == len(LAYOUT)
    for finding, (label, first, last) in zip(findings, LAYOUT, strict=True):
        tcoords = [i for i in finding.ContentSequence if i.ValueType == "TCOORD"]
        segment = tcoords[0]
        assert segment.TemporalRangeType == "SEGMENT"
        assert [float(v) for v in segment.ReferencedTimeOffsets] == \
            pytest.approx([first / FPS, (last + 1) / FPS])
        (ref,) = segment.ContentSequence
        assert ref.RelationshipType == "SELECTED FROM"
        assert ref.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == video.SOPInstanceUID
        images = [i for i in finding.ContentSequence if i.ValueType == "IMAGE"]
        if label == "unusable":
            assert len(tcoords) == 1 and not images
            continue
        point = tcoords[1]
        key = images[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        assert point.TemporalRangeType == "POINT"
        assert float(point.ReferencedTimeOffsets) == pytest.approx(key_times[key])
    evidence = {r.ReferencedSOPInstanceUID
                for s in sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
                for r in s.ReferencedSOPSequence}
    assert video.SOPInstanceUID in evidence
    for path in out.glob("*.dcm"):
        assert dciodvfy_errors(path) == [], path.name


def test_without_the_csv_the_derivation_says_middle_frame(procedure, tmp_path):
    out = tmp_path / "dicom"
    assert export(procedure, out, "--patient-id", "P1", csv=False) == 0
    for name, ds in read_all(out).items():
        if ds.Modality == "ES":
            assert "the middle frame of its section" in ds.DerivationDescription, name
            assert "confident" not in ds.DerivationDescription


def test_an_anatomy_map_codes_another_models_labels_and_a_study_date_wins(procedure,
                                                                          tmp_path, capsys):
    amap = tmp_path / "anatomy.json"
    amap.write_text(json.dumps({"ear": {"code": "117590005", "scheme": "SCT",
                                        "meaning": "Ear", "body_part": "EAR",
                                        "paired": True}}))
    out = tmp_path / "dicom"
    assert export(procedure, out, "--patient-id", "P1", "--anatomy-map", str(amap),
                  "--study-date", "2026-12-02T10:30") == 0
    files = read_all(out)
    ear = files["01-ear-0.0s.dcm"]
    assert ear.AnatomicRegionSequence[0].CodeValue == "117590005"
    assert "AnatomicRegionSequence" not in files["03-nose-2.4s.dcm"]  # not in this map
    assert ear.BodyPartExamined == "EAR" and ear.Laterality == ""  # paired, side unknown
    assert all(ds.StudyDate == "20261202" and ds.StudyTime.startswith("103000")
               for ds in files.values())
    texts = [i for i in _content(files["sections-sr.dcm"]) if i.ValueType == "CODE"]
    assert ("NOSE", "99ENDOSTREAM") in {(c.ConceptCodeSequence[0].CodeValue,
                                         c.ConceptCodeSequence[0].CodingSchemeDesignator)
                                        for c in texts}
    amap.write_text('{"ear": {"code": 1}}')
    capsys.readouterr()
    assert export(procedure, tmp_path / "d2", "--anatomy-map", str(amap)) == EXIT_USAGE
    assert "needs code, scheme, meaning and body_part" in capsys.readouterr().err


# --- worklist, commitment, resend against a real Orthanc ----------------------------------

def write_worklist_item(folder: Path, name: str, *, accession: str, patient_id: str,
                        patient_name: str = NON_ASCII, date: str = "20261201") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName, ds.PatientID = patient_name, patient_id
    ds.PatientBirthDate, ds.PatientSex = "19800102", "F"
    ds.AccessionNumber, ds.ReferringPhysicianName = accession, "Who^Doctor"
    ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.{abs(hash(name)) % 10**9}"
    ds.RequestedProcedureID, ds.RequestedProcedureDescription = "RP-" + accession, "Laryngoscopy"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "LARYNGO", "99HOSP", \
        "Laryngoscopy"
    ds.RequestedProcedureCodeSequence = [code]
    step = Dataset()
    step.ScheduledStationAETitle, step.Modality = "ENDOSTREAM", "ES"
    step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime = date, "0900"
    step.ScheduledProcedureStepID = "SPS-" + accession
    step.ScheduledProcedureStepDescription = "ENT endoscopy"
    ds.ScheduledProcedureStepSequence = [step]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.31"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.StudyInstanceUID + ".1"
    ds.save_as(folder / f"{name}.wl", enforce_file_format=True)


@needs_worklist
@needs_dciodvfy
def test_identity_from_the_one_matching_worklist_item(procedure, tmp_path, capsys):
    wl = tmp_path / "worklists"
    write_worklist_item(wl, "a", accession="ACC42", patient_id="P42")
    write_worklist_item(wl, "b", accession="ACC43", patient_id="P43")
    write_worklist_item(wl, "c", accession="ACC44", patient_id="P43", date="20261202")
    # Orthanc answers worklist queries only from AEs it knows (as a RIS would).
    orthanc = start_orthanc(tmp_path / "orthanc", worklists=wl,
                            modalities={"us": ("ENDOSTREAM", "127.0.0.1", free_port())})
    worklist = ["--worklist", f"127.0.0.1:{orthanc.dicom_port}", "--worklist-aet", ORTHANC_AET]
    try:
        out = tmp_path / "dicom"
        assert export(procedure, out, *worklist, "--accession", "ACC42") == 0
        files = read_all(out)
        for path, ds in files.items():
            assert (str(ds.PatientName), ds.PatientID, ds.AccessionNumber) == \
                (NON_ASCII, "P42", "ACC42")
            assert ds.StudyID == "RP-ACC42" and ds.PatientBirthDate == "19800102"
            assert ds.StudyInstanceUID.startswith("1.2.826.0.1.3680043.8.498.")
            assert ds.StudyDescription == "Laryngoscopy"
            (request,) = ds.RequestAttributesSequence
            assert (request.RequestedProcedureID, request.ScheduledProcedureStepID) == \
                ("RP-ACC42", "SPS-ACC42")
            assert dciodvfy_errors(out / path) == [], path
        sr = files["sections-sr.dcm"]
        assert sr.ReferencedRequestSequence[0].AccessionNumber == "ACC42"
        assert sr.PerformedProcedureCodeSequence[0].CodeValue == "LARYNGO"
        assert "(from worklist)" in capsys.readouterr().err
        # Several items: refused with what was found, nothing written.
        assert export(procedure, tmp_path / "d2", *worklist, "--patient-id", "P43") == 2
        err = capsys.readouterr().err
        assert "has 2 items for patient ID P43" in err and "accession ACC43" in err
        # The day narrows it down to one.
        assert export(procedure, tmp_path / "d3", *worklist, "--patient-id", "P43",
                      "--study-date", "2026-12-02") == 0
        assert read_all(tmp_path / "d3")["sections-sr.dcm"].AccessionNumber == "ACC44"
        # None: refused, nothing written.
        assert export(procedure, tmp_path / "d4", *worklist, "--accession", "NOPE") == 2
        assert "has no item for accession NOPE" in capsys.readouterr().err
        # A worklist and a name typed by hand contradict each other.
        assert export(procedure, tmp_path / "d5", *worklist, "--accession", "ACC42",
                      "--patient-name", "Doe^Jane") == 2
        assert not (tmp_path / "d2").exists() and not (tmp_path / "d4").exists()
        assert not (tmp_path / "d5").exists()
    finally:
        orthanc.stop()


def _orthanc_counts(orthanc) -> tuple[int, int, int]:
    return (len(orthanc.get("/studies")), len(orthanc.get("/series")),
            len(orthanc.get("/instances")))


@needs_orthanc
def test_a_send_killed_mid_way_and_sent_again_ends_committed_without_duplicates(
        procedure, tmp_path, capsys):
    """Orthanc dies (its own Lua filter exits the process) when the document arrives;
    the folder is then sent again to the restarted Orthanc, with Storage Commitment."""
    out = tmp_path / "dicom"
    port, commit_port = free_port(), free_port()
    us = {"endostream": ("ENDOSTREAM", "127.0.0.1", commit_port)}
    lua = ("function ReceivedInstanceFilter(dicom, origin, info)\n"
           "  if dicom.Modality == 'SR' then os.exit(1) end\n  return true\nend\n")
    send = ["--send", f"127.0.0.1:{port}", "--called-aet", ORTHANC_AET, "--retries", "0"]
    orthanc = start_orthanc(tmp_path / "orthanc", dicom_port=port, lua=lua, modalities=us)
    try:
        assert export(procedure, out, "--patient-id", "P1", "--with-video", *send) == EXIT_SEND
        assert orthanc.process.wait(timeout=30) != 0  # really killed mid-way
        err = capsys.readouterr().err
        assert "kept in" in err and err.count("endostream: error:") == 1
    finally:
        orthanc.stop()
    orthanc = start_orthanc(tmp_path / "orthanc", dicom_port=port, modalities=us)
    try:
        before = _orthanc_counts(orthanc)
        assert before[2] < 5  # the key frames that arrived before the kill, no more
        assert main(["dicom", str(out), *send, "--commit-port", str(commit_port),
                     "--commit-timeout", "30"]) == 0
        err = capsys.readouterr().err
        assert "sending 5 files" in err and "all 5 committed by Storage Commitment" in err
        assert _orthanc_counts(orthanc) == (1, 3, 5)
        # A whole export again (same inputs, --overwrite) and sent: still the same objects.
        assert export(procedure, out, "--patient-id", "P1", "--with-video", "--overwrite",
                      *send, "--commit-port", str(commit_port)) == 0
        assert _orthanc_counts(orthanc) == (1, 3, 5)
        stored = {orthanc.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"]
                  for i in orthanc.get("/instances")}
        assert stored == {ds.SOPInstanceUID for ds in read_all(out).values()}
    finally:
        orthanc.stop()


@needs_orthanc
def test_without_commit_port_the_files_are_checked_by_c_find_and_said_so(procedure,
                                                                         tmp_path, capsys):
    orthanc = start_orthanc(tmp_path / "orthanc")
    try:
        out = tmp_path / "dicom"
        assert export(procedure, out, "--patient-id", "P1") == 0
        capsys.readouterr()
        assert main(["dicom", str(out), "--send", f"127.0.0.1:{orthanc.dicom_port}",
                     "--called-aet", ORTHANC_AET]) == 0
        err = capsys.readouterr().err
        assert "each found again by C-FIND; not committed" in err
        # an export folder is sent as it is: writing options make no sense there
        assert main(["dicom", str(out), "--send", f"127.0.0.1:{orthanc.dicom_port}",
                     "--called-aet", ORTHANC_AET, "--patient-id", "P2"]) == 2
        assert main(["dicom", str(tmp_path / "in"), "--send",
                     f"127.0.0.1:{orthanc.dicom_port}", "--called-aet", ORTHANC_AET]) == 2
        assert "holds no DICOM files" in capsys.readouterr().err
    finally:
        orthanc.stop()


def test_a_like_file_with_a_value_too_long_is_refused_without_a_raw_warning(procedure,
                                                                            tmp_path, capsys):
    exam = Dataset()
    exam.StudyInstanceUID, exam.PatientName = "1.2.3.4", "Roe^Ann"
    exam.SOPClassUID, exam.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.77.1.1", "1.2.3.4.5"
    exam.file_meta = FileMetaDataset()
    exam.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    with pytest.warns(UserWarning):  # pydicom itself only warns, and writes it anyway
        exam.PatientID = "7" * 70
    exam.save_as(tmp_path / "exam.dcm", enforce_file_format=True)
    out = tmp_path / "dicom"
    assert export(procedure, out, "--like", str(tmp_path / "exam.dcm")) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "'s PatientID is 70 characters long; DICOM's LO allows at most 64" in err
    assert err.count("\n") == 1 and "Warning" not in err and not out.exists()


@needs_orthanc
def test_an_archive_that_refuses_commitment_falls_back_to_c_find_and_says_so(procedure,
                                                                            tmp_path, capsys):
    commit_port = free_port()
    us = {"endostream": {"AET": "ENDOSTREAM", "Host": "127.0.0.1", "Port": commit_port,
                         "AllowStorageCommitment": False}}
    orthanc = start_orthanc(tmp_path / "orthanc", modalities=us)
    try:
        assert export(procedure, tmp_path / "dicom", "--patient-id", "P1", "--send",
                      f"127.0.0.1:{orthanc.dicom_port}", "--called-aet", ORTHANC_AET,
                      "--commit-port", str(commit_port), "--commit-timeout", "10") == 0
        err = capsys.readouterr().err
        assert "each found again by C-FIND; not committed: the archive refused the Storage " \
               "Commitment request from this AE title" in err
        assert len(orthanc.get("/instances")) == 4
    finally:
        orthanc.stop()
