"""The procedure into the hospital record: key frames and sections as DICOM, optionally
sent to an archive (PACS).

- :mod:`~endostream.dicom.identity`: who and which study the files belong to, taken only
  from the user (options or a template DICOM file), or clearly marked anonymous;
- :mod:`~endostream.dicom.images`: one VL Endoscopic Image per organ section, full
  resolution, from the recording;
- :mod:`~endostream.dicom.document`: one Comprehensive SR listing the sections and
  referencing the images;
- :mod:`~endostream.dicom.video`: the whole recording as a Video Endoscopic Image
  (H.264 copied where it qualifies), with ``--with-video``;
- :mod:`~endostream.dicom.write`: picking the frames, writing and re-reading the files;
- :mod:`~endostream.dicom.send`: C-STORE to an archive, the only module of endostream
  that opens a network connection, and only when ``--send`` asks for it.

Needs the dicom extra (``pip install 'endostream[dicom]'``: pydicom, highdicom,
pynetdicom).
"""
