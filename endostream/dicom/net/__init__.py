"""The DICOM network services, the only modules of endostream that open a connection
(tests/test_security.py allows pynetdicom here and nowhere else), and only when the user
names an archive (``--send``, ``--worklist``):

- :mod:`~endostream.dicom.net.association`: the address, our AE, the association with
  its retries, and a permanent rejection told apart from a transient one;
- :mod:`~endostream.dicom.net.store`: C-STORE of an export's files, each status checked,
  C-FIND to look them up where commitment is not offered;
- :mod:`~endostream.dicom.net.commit`: Storage Commitment (N-ACTION, then the archive's
  N-EVENT-REPORT on the same association or on the one it opens back to us);
- :mod:`~endostream.dicom.net.worklist`: the Modality Worklist query (C-FIND) that gives
  the patient and the order.

Everything is a client (SCU) except one listener: with ``--commit-port`` a Storage
Commitment SCU accepts, while it waits for the report and from the archive's AE title
only, the association the archive opens back to deliver it.
"""
