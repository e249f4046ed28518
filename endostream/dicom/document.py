"""The procedure's sections as one DICOM Comprehensive SR that references the key frames.

Why Comprehensive SR and not a Key Object Selection: a KOS (PS3.3 A.35.4, TID 2010) is a
list of references with one free-text description; the sections are findings with
numbers (start and end in seconds, share of good frames, confidence) that a reader or a
program should get back as numbers with units, one group per section, each with its key
frame. A Comprehensive SR holds exactly that as coded content items (CONTAINER per
section, TEXT label, NUM values with UCUM units, IMAGE reference) and every archive
stores it; SR-aware viewers (Weasis, dcmtk's dsr2html, Orthanc's tag view) show the tree
as text. KOS-driven "key image" flags are the one thing this does not give.

Concept names: DICOM's own codes where one means the thing (Algorithm Name / Version,
Best illustration of finding); the rest are private codes of the scheme ``99ENDOSTREAM``
(the standard reserves designators starting with ``99`` for local codes), rather than
borrowing a standard code whose meaning is not quite this. The model's sha256 is in the
document (Algorithm Parameters), so a finding can be traced to the model that made it.
No template (TID) is claimed. The document is marked unverified and, when the analysis
was interrupted (``complete: false``), partial.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime

from highdicom.sr import (
    CodedConcept,
    ComprehensiveSR,
    ContainerContentItem,
    ImageContentItem,
    NumContentItem,
    TextContentItem,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from endostream import __version__
from endostream.dicom.identity import Identity
from endostream.dicom.images import MANUFACTURER, Series, common_attributes, dicom_date_time
from endostream.segmentation.section import Section

SCHEME = "99ENDOSTREAM"
TITLE = CodedConcept("SECTIONS", SCHEME, "Endoscopy organ sections")
SECTION = CodedConcept("SECTION", SCHEME, "Section")
LABEL = CodedConcept("LABEL", SCHEME, "Section label")
START = CodedConcept("START", SCHEME, "Section start time")
END = CodedConcept("END", SCHEME, "Section end time")
GOOD = CodedConcept("GOOD", SCHEME, "Share of good frames")
CONFIDENCE = CodedConcept("CONFIDENCE", SCHEME, "Mean label probability")
DURATION = CodedConcept("DURATION", SCHEME, "Recording duration")
NOTE = CodedConcept("NOTE", SCHEME, "Note")
SECONDS = CodedConcept("s", "UCUM", "second")
PERCENT = CodedConcept("%", "UCUM", "percent")
NO_UNITS = CodedConcept("1", "UCUM", "no units")

DISCLAIMER = ("Automatic sectioning by endostream, an engineering tool: not a diagnosis and "
              "not a medical device.")


def section_items(section: Section, image: Dataset | None) -> ContainerContentItem:
    """One section as a CONTAINER of its label, numbers and key frame."""
    item = ContainerContentItem(SECTION, relationship_type="CONTAINS")
    children = [
        TextContentItem(LABEL, section.label, relationship_type="CONTAINS"),
        NumContentItem(START, round(section.start_s, 3), SECONDS, relationship_type="CONTAINS"),
        NumContentItem(END, round(section.end_s, 3), SECONDS, relationship_type="CONTAINS"),
        NumContentItem(GOOD, round(section.good_fraction * 100, 1), PERCENT,
                       relationship_type="CONTAINS"),
        NumContentItem(CONFIDENCE, round(section.confidence, 4), NO_UNITS,
                       relationship_type="CONTAINS"),
    ]
    if image is not None:
        children.append(ImageContentItem(codes.DCM.BestIllustrationOfFinding,
                                         image.SOPClassUID, image.SOPInstanceUID,
                                         relationship_type="CONTAINS"))
    item.ContentSequence = children
    return item


def sections_document(sections: Sequence[Section], images: Sequence[Dataset | None], *,
                      identity: Identity, series: Series, model_sha256: str,
                      duration_s: float, complete: bool, when: datetime) -> Dataset:
    """The Comprehensive SR: ``images[i]`` is the key frame of ``sections[i]`` (``None``
    for sections without one). Its study is ``identity``'s; the images must share it."""
    root = ContainerContentItem(TITLE, template_id=None)
    items = [
        TextContentItem(codes.DCM.AlgorithmName, MANUFACTURER, relationship_type="CONTAINS"),
        TextContentItem(codes.DCM.AlgorithmVersion, __version__, relationship_type="CONTAINS"),
        TextContentItem(codes.DCM.AlgorithmParameters, f"model sha256 {model_sha256}",
                        relationship_type="CONTAINS"),
        NumContentItem(DURATION, round(duration_s, 3), SECONDS, relationship_type="CONTAINS"),
        TextContentItem(NOTE, DISCLAIMER + ("" if complete else " The analysis was "
                        "interrupted: the sections cover only part of the recording."),
                        relationship_type="CONTAINS"),
    ]
    items += [section_items(s, img) for s, img in zip(sections, images, strict=True)]
    root.ContentSequence = items
    evidence = [img for img in images if img is not None]
    with warnings.catch_warnings():
        # highdicom warns about a name without '^' (one component); the name is the
        # user's, given as the hospital writes it, and is copied unchanged.
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended")
        sr = ComprehensiveSR(evidence=evidence, content=root, series_instance_uid=series.uid,
                             series_number=series.number, sop_instance_uid=generate_uid(),
                             instance_number=1, manufacturer=MANUFACTURER,
                             is_complete=complete, is_final=False, is_verified=False)
    # highdicom copies patient and study from the evidence; set them from the identity
    # so a document without key frames is filed in the same study as well.
    common_attributes(sr, identity, series, "SR", when)
    sr.ContentDate, sr.ContentTime = dicom_date_time(when)
    sr.SeriesDescription = series.description
    scheme = Dataset()  # a local scheme is to be described in the file (PS3.3 C.12.1)
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "endostream section report codes"
    scheme.CodingSchemeResponsibleOrganization = "endostream"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr
