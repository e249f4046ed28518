"""The procedure's sections as one DICOM Comprehensive SR that references the key frames
and, with ``--with-video``, points into the recording.

Why Comprehensive SR and not a Key Object Selection: a KOS (PS3.3 A.35.4, TID 2010) is a
list of references with one free-text description; the sections are findings with
numbers (start and end in seconds, share of good frames, confidence) that a reader or a
program should get back as numbers with units, one group per section, each with its key
frame. A Comprehensive SR holds exactly that as coded content items and every archive
stores it; SR-aware viewers (Weasis, dcmtk's dsr2html, Orthanc's tag view) show the tree
as text.

Concept names are DICOM's (DCM), SNOMED CT's (SCT) or LOINC's (LN) wherever one means the
thing (see :data:`CONCEPTS` and docs/dicom-conformance.md): the title Diagnostic Imaging
Report, a Finding per section with its Short Label (the model's label), its Finding Site
(the organ's anatomic code, :mod:`endostream.anatomy`) or, for a stretch where nothing
could be seen, the Quality Finding "Unusable - Quality renders image unusable",
Beginning / End of Time Period in seconds, the Probability of the label, the key frame as
Best illustration of finding, and (with the recording in the export) temporal
coordinates: a TCOORD SEGMENT over the section's time and a TCOORD POINT at the key
frame's, each SELECTED FROM the Video Endoscopic Image. Only what has no standard code
uses the private scheme ``99ENDOSTREAM`` (the standard reserves ``99`` designators for
local codes, described in the file's Coding Scheme Identification Sequence): the share of
good frames, and the label of a model class without an anatomic code. No template (TID)
is claimed. The document is marked unverified and, when the analysis was interrupted
(``complete: false``), partial. A document made from corrected sections names the one it
replaces (Predecessor Documents Sequence).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from highdicom.sr import (
    CodeContentItem,
    CodedConcept,
    ComprehensiveSR,
    ContainerContentItem,
    ImageContentItem,
    NumContentItem,
    TcoordContentItem,
    TextContentItem,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from endostream import __version__
from endostream.anatomy import AnatomicRegion
from endostream.dicom.identity import Identity
from endostream.dicom.images import MANUFACTURER, Series, common_attributes, dicom_date_time
from endostream.segmentation.section import UNUSABLE, Section

SCHEME = "99ENDOSTREAM"
#: Standard concepts the document uses (see the module docstring).
CONCEPTS = {
    "title": CodedConcept("18748-4", "LN", "Diagnostic Imaging Report"),
    "section": CodedConcept("121071", "DCM", "Finding"),
    "label": CodedConcept("125309", "DCM", "Short Label"),
    "site": CodedConcept("363698007", "SCT", "Finding Site"),
    "quality": CodedConcept("111052", "DCM", "Quality Finding"),
    "unusable": CodedConcept("111235", "DCM", "Unusable - Quality renders image unusable"),
    "start": CodedConcept("130533", "DCM", "Beginning of Time Period"),
    "end": CodedConcept("130534", "DCM", "End of Time Period"),
    "probability": CodedConcept("122157", "DCM", "Probability"),
    "duration": CodedConcept("121142", "DCM", "Acquisition Duration"),
    "comment": CodedConcept("121106", "DCM", "Comment"),
    "time": CodedConcept("110858", "DCM", "Time"),
    "source": CodedConcept("121324", "DCM", "Source image"),
}
#: Private codes, only where no standard concept means the thing.
GOOD = CodedConcept("GOOD", SCHEME, "Share of good frames")
SECONDS = CodedConcept("s", "UCUM", "second")
PERCENT = CodedConcept("%", "UCUM", "percent")
NO_UNITS = CodedConcept("1", "UCUM", "no units")

DISCLAIMER = ("Automatic sectioning by endostream, an engineering tool: not a diagnosis and "
              "not a medical device.")


def private_label(label: str) -> CodedConcept:
    """A model class with no anatomic code, as a code of the private scheme."""
    return CodedConcept(label[:16].upper(), SCHEME, label)


def _what(section: Section, region: AnatomicRegion | None):
    c = CONCEPTS
    if section.label == UNUSABLE:
        return CodeContentItem(c["quality"], c["unusable"], relationship_type="CONTAINS")
    if region is not None:
        return CodeContentItem(c["site"], CodedConcept(region.code, region.scheme,
                                                       region.meaning),
                               relationship_type="CONTAINS")
    return CodeContentItem(c["section"], private_label(section.label),
                           relationship_type="CONTAINS")


def _in_video(start_s: float, end_s: float | None, video: Dataset):
    """A TCOORD (SEGMENT from start to end, or POINT at start) selected from ``video``."""
    offsets = [round(start_s, 3)] if end_s is None else [round(start_s, 3), round(end_s, 3)]
    item = TcoordContentItem(CONCEPTS["time"], "POINT" if end_s is None else "SEGMENT",
                             referenced_time_offsets=offsets, relationship_type="CONTAINS")
    item.ContentSequence = [ImageContentItem(CONCEPTS["source"], video.SOPClassUID,
                                             video.SOPInstanceUID,
                                             relationship_type="SELECTED FROM")]
    return item


def section_items(section: Section, image: Dataset | None, *, region: AnatomicRegion | None,
                  key_time_s: float | None, video: Dataset | None) -> ContainerContentItem:
    """One section as a Finding: its label, site, times, numbers, key frame and its place
    in the recording."""
    c = CONCEPTS
    item = ContainerContentItem(c["section"], relationship_type="CONTAINS")
    children = [
        TextContentItem(c["label"], section.label, relationship_type="CONTAINS"),
        _what(section, region),
        NumContentItem(c["start"], round(section.start_s, 3), SECONDS,
                       relationship_type="CONTAINS"),
        NumContentItem(c["end"], round(section.end_s, 3), SECONDS,
                       relationship_type="CONTAINS"),
        NumContentItem(GOOD, round(section.good_fraction * 100, 1), PERCENT,
                       relationship_type="CONTAINS"),
        NumContentItem(c["probability"], round(section.confidence, 4), NO_UNITS,
                       relationship_type="CONTAINS"),
    ]
    if video is not None:
        children.append(_in_video(section.start_s, section.end_s, video))
    if image is not None:
        children.append(ImageContentItem(codes.DCM.BestIllustrationOfFinding,
                                         image.SOPClassUID, image.SOPInstanceUID,
                                         relationship_type="CONTAINS"))
        if video is not None and key_time_s is not None:
            children.append(_in_video(key_time_s, None, video))
    item.ContentSequence = children
    return item


def referenced_request(identity: Identity) -> list[Dataset] | None:
    """Referenced Request Sequence (SR Document General, type 1C) from the worklist."""
    request = identity.request
    if request is None:
        return None
    item = Dataset()
    item.StudyInstanceUID = identity.dataset.StudyInstanceUID
    item.ReferencedStudySequence = []
    item.AccessionNumber = identity.dataset.get("AccessionNumber", "")
    item.RequestedProcedureID = request.get("RequestedProcedureID", "")
    item.RequestedProcedureDescription = request.get("RequestedProcedureDescription", "")
    item.RequestedProcedureCodeSequence = request.get("RequestedProcedureCodeSequence", [])
    item.PlacerOrderNumberImagingServiceRequest = ""
    item.FillerOrderNumberImagingServiceRequest = ""
    return [item]


def sections_document(sections: Sequence[Section], images: Sequence[Dataset | None], *,
                      identity: Identity, series: Series, sop_uid: str, model_sha256: str,
                      duration_s: float, complete: bool, content_time: datetime,
                      recorded: datetime | None, regions: Mapping[str, AnatomicRegion],
                      key_times_s: Sequence[float | None], video: Dataset | None = None,
                      replaces: Dataset | None = None) -> Dataset:
    """The Comprehensive SR: ``images[i]`` is the key frame of ``sections[i]`` taken at
    ``key_times_s[i]`` (``None`` for sections without one); ``video`` the recording's
    Video Endoscopic Image (or ``None``); ``replaces`` the document it supersedes."""
    c = CONCEPTS
    root = ContainerContentItem(c["title"], template_id=None)
    items = [
        TextContentItem(codes.DCM.AlgorithmName, MANUFACTURER, relationship_type="CONTAINS"),
        TextContentItem(codes.DCM.AlgorithmVersion, __version__, relationship_type="CONTAINS"),
        TextContentItem(codes.DCM.AlgorithmParameters, f"model sha256 {model_sha256}",
                        relationship_type="CONTAINS"),
        NumContentItem(c["duration"], round(duration_s, 3), SECONDS,
                       relationship_type="CONTAINS"),
        TextContentItem(c["comment"], DISCLAIMER + ("" if complete else " The analysis was "
                        "interrupted: the sections cover only part of the recording."),
                        relationship_type="CONTAINS"),
    ]
    items += [section_items(s, img, region=regions.get(s.label), key_time_s=t, video=video)
              for s, img, t in zip(sections, images, key_times_s, strict=True)]
    root.ContentSequence = items
    evidence = [img for img in images if img is not None] + ([video] if video else [])
    if not evidence:  # highdicom copies patient and study from the first evidence item
        evidence = [_stub(identity, series)]
    sr = ComprehensiveSR(evidence=evidence, content=root, series_instance_uid=series.uid,
                         series_number=series.number, sop_instance_uid=sop_uid,
                         instance_number=1, manufacturer=MANUFACTURER,
                         is_complete=complete, is_final=False, is_verified=False,
                         requested_procedures=referenced_request(identity),
                         previous_versions=[replaces] if replaces is not None else None,
                         record_evidence=bool([img for img in images if img is not None]
                                              or video))
    # highdicom copies patient and study from the evidence; set them from the identity
    # so a document without key frames is filed in the same study as well.
    common_attributes(sr, identity, series, "SR", recorded)
    sr.ContentDate, sr.ContentTime = dicom_date_time(content_time)
    sr.SeriesDescription = series.description
    if "ProcedureCodeSequence" in identity.dataset:
        sr.PerformedProcedureCodeSequence = identity.dataset.ProcedureCodeSequence
    scheme = Dataset()  # a local scheme is to be described in the file (PS3.3 C.12.1)
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "endostream section report codes"
    scheme.CodingSchemeResponsibleOrganization = "endostream"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def _stub(identity: Identity, series: Series) -> Dataset:
    ds = Dataset()
    ds.update(identity.dataset)
    ds.SeriesInstanceUID, ds.SOPClassUID = series.uid, "1.2.840.10008.5.1.4.1.1.88.33"
    ds.SOPInstanceUID = series.uid
    return ds
