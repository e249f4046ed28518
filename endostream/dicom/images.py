"""One organ section's key frame as a DICOM VL Endoscopic Image.

Why VL Endoscopic Image and not Secondary Capture: the pixels are what the endoscope
captured during the examination (decoded from the recording at full resolution, not
redrawn or resized), which is what the VL Endoscopic Image IOD (PS3.3 A.32.1) describes,
and what viewers and IHE's endoscopy workflow file under modality ``ES``. Every attribute
that IOD requires can be filled honestly:

- Image Type ``DERIVED\\PRIMARY``: taken from the recording after the examination, but
  the pixels are the examination's own;
- Lossy Image Compression ``01`` with the recording's codec as the method
  (``ISO_14496_10`` for H.264): the frame went through that codec;
- Anatomic Region Sequence: the section's organ as a standard code
  (:mod:`endostream.anatomy`: External ear, Nose, Larynx for the default model); the
  series' Body Part Examined is the organs' common term (``HEADNECK`` when the key frames
  show several), and Laterality (type 2C) is present, empty, only for a paired part
  whose side is not known; a label without a code gets no region;
- Content Date/Time and Acquisition DateTime: when the frame was recorded (the
  recording's start, from its container or ``--study-date``, plus the frame's time), left
  out when the recording's start is not known (a DERIVED image may); never the export
  time;
- Source Image Sequence (with ``--with-video``): the Video Endoscopic Image of the
  recording and the frame number the key frame was decoded from;
- the equipment that made the instance is endostream (Manufacturer, Model, Software
  Versions); the scope's own make is not known and is not invented.

Secondary Capture would describe a picture made by a converter, and would lose the
modality a reader filters endoscopy by. The frame's place in the procedure goes into
Derivation Description and Image Comments, never the recording's file name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from endostream import __version__
from endostream.anatomy import AnatomicRegion
from endostream.dicom.identity import Identity
from endostream.segmentation.section import Section

VL_ENDOSCOPIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.1"
#: What endostream writes in Manufacturer, Manufacturer's Model Name and Software Versions.
MANUFACTURER = "endostream"
#: DICOM's term (PS3.3 C.7.6.1.1.5) for each codec a recording may have used.
LOSSY_METHODS = {"h264": "ISO_14496_10", "hevc": "ISO_23008_2", "mpeg4": "ISO_14496_2",
                 "mpeg2video": "ISO_13818_2", "mjpeg": "ISO_10918_1"}
#: Codecs that keep every pixel: no Lossy Image Compression "01" for these.
LOSSLESS_CODECS = {"ffv1", "rawvideo", "png", "huffyuv", "utvideo"}


#: Head and Neck (SCT 774007, CID 4): the region of ENT endoscopy as a whole.
HEAD_AND_NECK = AnatomicRegion("774007", "SCT", "Head and Neck", "HEADNECK")
#: Why the key frame references the video (CID 7202).
SOURCE_PURPOSE = ("121322", "DCM", "Source image for image processing operation")


@dataclass(frozen=True)
class Series:
    """One series of the export: its UID, number, description and (for images) the
    regions its instances show."""

    uid: str
    number: int
    description: str
    regions: tuple[AnatomicRegion | None, ...] = ()

    @property
    def body_part(self) -> AnatomicRegion | None:
        """The region the whole series shows: the instances' one region, else Head and
        Neck when they show several, else none."""
        known = {r for r in self.regions if r is not None}
        if not known:
            return None
        return known.pop() if len(known) == 1 else HEAD_AND_NECK


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """A code sequence item (Code Value, Coding Scheme Designator, Code Meaning)."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def region_item(region: AnatomicRegion) -> Dataset:
    return code_item(region.code, region.scheme, region.meaning)


def dicom_date_time(when: datetime) -> tuple[str, str]:
    """``(DA, TM)`` strings of ``when``.

    >>> dicom_date_time(datetime(2026, 12, 2, 23, 5, 7, 120000))
    ('20261202', '230507.120000')
    """
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")


def common_attributes(ds: Dataset, identity: Identity, series: Series, modality: str,
                      recorded: datetime | None) -> None:
    """Patient, study, series, equipment and SOP common attributes shared by every file;
    ``recorded``: when the recording started (``None``: not known)."""
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names and labels may be any script
    ds.update(identity.dataset)
    if recorded is not None and not ds.get("StudyDate"):
        ds.StudyDate, ds.StudyTime = dicom_date_time(recorded)
    ds.Modality = modality
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    if recorded is not None:
        ds.SeriesDate, ds.SeriesTime = dicom_date_time(recorded)
    part = series.body_part
    if part is not None:
        ds.BodyPartExamined = part.body_part
        if part.paired:  # type 2C: a paired part's side, here not known
            ds.Laterality = ""
    if identity.request is not None:
        ds.RequestAttributesSequence = [identity.request]
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MANUFACTURER
    ds.SoftwareVersions = __version__


def new_instance(sop_class_uid: str, transfer_syntax_uid: str, sop_instance_uid: str,
                 identity: Identity, series: Series, recorded: datetime | None,
                 content: datetime | None) -> Dataset:
    """A new ``ES`` instance with its file meta, UIDs, the common attributes and its
    content date/time (``content``: when its pixels were recorded; left out if not known,
    which a DERIVED image may)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax_uid
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    common_attributes(ds, identity, series, "ES", recorded)
    if content is not None:
        ds.ContentDate, ds.ContentTime = dicom_date_time(content)
        ds.AcquisitionDateTime = content.strftime("%Y%m%d%H%M%S.%f")
    ds.PatientOrientation = ""
    return ds


def section_caption(index: int, section: Section) -> str:
    """The section as one line, for Image Comments and the summary.

    >>> section_caption(2, Section("nose", 12.0, 30.5, 300, 762, 0.85, 0.93))
    'section 2: nose, 12.00-30.50 s, good 85 %, confidence 0.93'
    """
    return (f"section {index}: {section.label}, {section.start_s:.2f}-{section.end_s:.2f} s, "
            f"good {section.good_fraction * 100:.0f} %, confidence {section.confidence:.2f}")


@dataclass(frozen=True)
class KeyFrame:
    """Where a key frame comes from: its section, its frame in the recording and why that
    frame (``"most confident"``: the per-frame CSV's best good frame, ``"middle"``)."""

    section_index: int
    section: Section
    frame_time_s: float
    frame_number: int  #: 1-based, as the Video Endoscopic Image numbers its frames
    chosen: str
    region: AnatomicRegion | None


def derivation(key: KeyFrame, codec: str) -> str:
    """Derivation Description: what the frame is and why it was chosen, truly.

    >>> k = KeyFrame(2, Section("nose", 12.0, 30.5, 300, 762, 0.85, 0.93), 21.25, 532,
    ...              "middle", None)
    >>> derivation(k, "h264")
    'frame 532 at 21.250 s of the procedure recording (h264), the middle frame of its section'
    """
    why = ("the most confident good frame of its section (per-frame CSV)"
           if key.chosen == "most confident" else "the middle frame of its section")
    return (f"frame {key.frame_number} at {key.frame_time_s:.3f} s of the procedure "
            f"recording ({codec}), {why}")


def key_frame_image(rgb: np.ndarray, *, identity: Identity, series: Series, sop_uid: str,
                    instance_number: int, key: KeyFrame, codec: str,
                    recorded: datetime | None,
                    video: Sequence[str] | None = None) -> Dataset:
    """A VL Endoscopic Image of ``rgb`` (uint8, H x W x 3), ready to save; ``video``:
    the (SOP class, SOP instance) UIDs of the recording's Video Endoscopic Image."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 frame, got {rgb.dtype} {rgb.shape}")
    content = recorded + timedelta(seconds=key.frame_time_s) if recorded else None
    ds = new_instance(VL_ENDOSCOPIC_IMAGE, ExplicitVRLittleEndian, sop_uid, identity, series,
                      recorded, content)
    ds.InstanceNumber = instance_number
    ds.ImageType = ["DERIVED", "PRIMARY"]
    if key.region is not None:
        ds.AnatomicRegionSequence = [region_item(key.region)]
    ds.DerivationDescription = derivation(key, codec)
    section, section_index = key.section, key.section_index
    if video is not None:
        source = Dataset()
        source.ReferencedSOPClassUID, source.ReferencedSOPInstanceUID = video
        source.ReferencedFrameNumber = key.frame_number
        source.PurposeOfReferenceCodeSequence = [code_item(*SOURCE_PURPOSE)]
        ds.SourceImageSequence = [source]
    ds.ImageComments = (f"endostream key frame, {section_caption(section_index, section)} "
                        "(automatic, not a diagnosis)")
    if codec in LOSSLESS_CODECS:
        ds.LossyImageCompression = "00"
    else:
        ds.LossyImageCompression = "01"
        if codec in LOSSY_METHODS:
            ds.LossyImageCompressionMethod = LOSSY_METHODS[codec]
    ds.AcquisitionContextSequence = []
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(rgb.shape[0]), int(rgb.shape[1])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    return ds
