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
- Acquisition Context Sequence (type 2) is present and empty: nothing about the
  acquisition context is known;
- Content Date/Time is when this frame was derived (the standard's "pixel data creation"),
  not the examination time, which endostream never reads from the recording's metadata.
  Acquisition Date/Time (type 3) is left out for the same reason;
- the equipment that made the instance is endostream (Manufacturer, Model, Software
  Versions); the scope's own make is not known and is not invented.

Secondary Capture would describe a picture made by a converter, and would lose the
modality a reader filters endoscopy by. The frame's place in the procedure goes into
Derivation Description and Image Comments, never the recording's file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from endostream import __version__
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


@dataclass(frozen=True)
class Series:
    """One series of the export: its UID, number and description."""

    uid: str
    number: int
    description: str

    @classmethod
    def new(cls, number: int, description: str) -> Series:
        return cls(generate_uid(), number, description)


def dicom_date_time(when: datetime) -> tuple[str, str]:
    """``(DA, TM)`` strings of ``when``.

    >>> dicom_date_time(datetime(2026, 12, 2, 23, 5, 7, 120000))
    ('20261202', '230507.120000')
    """
    return when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")


def common_attributes(ds: Dataset, identity: Identity, series: Series, modality: str,
                      when: datetime) -> None:
    """Patient, study, series, equipment and SOP common attributes shared by every file."""
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names and labels may be any script
    ds.update(identity.dataset)
    ds.Modality = modality
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    ds.SeriesDate, ds.SeriesTime = dicom_date_time(when)
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MANUFACTURER
    ds.SoftwareVersions = __version__
    ds.InstanceCreationDate, ds.InstanceCreationTime = dicom_date_time(when)


def new_instance(sop_class_uid: str, transfer_syntax_uid: str, identity: Identity,
                 series: Series, when: datetime) -> Dataset:
    """A new ``ES`` instance with its file meta, UIDs, the common attributes and its
    content date/time (when it was made from the recording)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax_uid
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    common_attributes(ds, identity, series, "ES", when)
    ds.ContentDate, ds.ContentTime = dicom_date_time(when)
    ds.PatientOrientation = ""
    return ds


def section_caption(index: int, section: Section) -> str:
    """The section as one line, for Image Comments and the summary.

    >>> section_caption(2, Section("nose", 12.0, 30.5, 300, 762, 0.85, 0.93))
    'section 2: nose, 12.00-30.50 s, good 85 %, confidence 0.93'
    """
    return (f"section {index}: {section.label}, {section.start_s:.2f}-{section.end_s:.2f} s, "
            f"good {section.good_fraction * 100:.0f} %, confidence {section.confidence:.2f}")


def key_frame_image(rgb: np.ndarray, *, identity: Identity, series: Series,
                    instance_number: int, section_index: int, section: Section,
                    frame_time_s: float, codec: str, when: datetime) -> Dataset:
    """A VL Endoscopic Image of ``rgb`` (uint8, H x W x 3), ready to save."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 frame, got {rgb.dtype} {rgb.shape}")
    ds = new_instance(VL_ENDOSCOPIC_IMAGE, ExplicitVRLittleEndian, identity, series, when)
    ds.InstanceNumber = instance_number
    # Type 2C for paired organs (an ear): which side is not known, so present and empty.
    ds.Laterality = ""
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.DerivationDescription = (f"frame at {frame_time_s:.3f} s of the procedure recording "
                                f"({codec}), most confident good frame of its section")
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
