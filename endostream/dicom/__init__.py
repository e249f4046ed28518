"""The procedure into the hospital record: key frames and sections as DICOM, optionally
sent to an archive (PACS).

- :mod:`~endostream.dicom.identity`: who and which study the files belong to, taken only
  from the user (options, a worklist item or a template DICOM file), or clearly marked
  anonymous; :mod:`~endostream.dicom.values` checks every value against its VR;
- :mod:`~endostream.dicom.uids`: UIDs derived from the recording and the sections, so a
  retry stores the same instances;
- :mod:`~endostream.dicom.images`: one VL Endoscopic Image per organ section, full
  resolution, from the recording, with its coded anatomy (:mod:`endostream.anatomy`);
- :mod:`~endostream.dicom.document`: one Comprehensive SR listing the sections with
  standard codes, referencing the images and pointing into the recording;
- :mod:`~endostream.dicom.video`: the whole recording as a Video Endoscopic Image
  (H.264 copied where it qualifies), with ``--with-video``;
- :mod:`~endostream.dicom.write` and :mod:`~endostream.dicom.folder`: picking the
  frames, writing all or nothing, re-reading the files;
- :mod:`~endostream.dicom.net`: C-STORE, Storage Commitment, C-FIND and the Modality
  Worklist, the only modules of endostream that open a network connection, and only
  when ``--send`` or ``--worklist`` asks for it.

Needs the dicom extra (``pip install 'endostream[dicom]'``: pydicom, highdicom,
pynetdicom).
"""
