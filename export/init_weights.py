"""Where the initial weights come from: ``--init imagenet``, ``bundled`` or ``FILE``.

Transfer learning from ImageNet was the thesis' main lever: it converged far faster than
training from random weights. ``--init FILE`` reads a local state dict (offline, always).
``--init imagenet`` uses torchvision's own weights API for EfficientNetB0
(``IMAGENET1K_V1``): the first time, on an online machine, torchvision fetches the file
into torch's hub cache (``$TORCH_HOME/hub/checkpoints``) and checks it against the SHA-256
prefix published in its file name; later runs read the cached file, checked the same way,
offline. Nothing is fetched unless ``imagenet`` is asked for. ``--init bundled`` is the
demo model shipped in the package (``endostream/data/endostream-demo.onnx``), and any
``FILE.onnx`` a contract file: its backbone *and* heads are read back (:mod:`.onnx_init`),
so the model that runs is the one fine-tuned.

>>> resolve_init(None) is None
True
>>> resolve_init("weights.pth").name
'weights.pth'
>>> resolve_init("bundled").name
'endostream-demo.onnx'
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from endostream.bundled import require_demo_model
from endostream.errors import ModelError, UsageError

log = logging.getLogger(__name__)

#: The ``--init`` value that asks for torchvision's ImageNet weights.
IMAGENET = "imagenet"
#: The ``--init`` value that names the bundled demo model (a contract file).
BUNDLED = "bundled"

#: torch.hub's naming rule: ``name-<first hex digits of the file's SHA-256>.ext``.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def resolve_init(value: str | Path | None) -> Path | None:
    """The local state-dict file for ``--init`` (None: random initialisation)."""
    if value is None:
        return None
    if str(value) == IMAGENET:
        return imagenet_weights()
    return init_file(value)


def init_file(value: str | Path | None) -> Path | None:
    """The file ``--init`` names without fetching anything: None for none or ``imagenet``
    (which :func:`resolve_init` fetches), the bundled model's path for ``bundled``."""
    if value is None or str(value) == IMAGENET:
        return None
    if str(value) == BUNDLED:
        return require_demo_model()
    return Path(value)


def imagenet_weights() -> Path:
    """The cached, verified torchvision EfficientNetB0 ImageNet file; fetched once if absent.

    Raises :class:`~endostream.errors.UsageError` (one line) when the file is not cached
    and cannot be fetched, and :class:`~endostream.errors.ModelError` when a cached file
    fails its checksum.
    """
    import torch
    from torchvision.models import EfficientNet_B0_Weights

    weights = EfficientNet_B0_Weights.IMAGENET1K_V1
    name = weights.url.rsplit("/", 1)[-1]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not cached.is_file():
        log.info("fetching %s into %s (once)", weights.url, cached.parent)
        try:
            weights.get_state_dict(progress=False, check_hash=True)
        except (OSError, RuntimeError) as e:  # no network (URLError is an OSError), bad hash
            if cached.is_file():
                cached.unlink()  # torch.hub keeps nothing half-written, but be sure
            raise UsageError(
                f"--init imagenet needs the network once to fetch {weights.url} into "
                f"{cached.parent} ({type(e).__name__}); go online once, copy that file there, "
                "or give --init FILE") from None
    verify(cached)
    return cached


def verify(path: Path) -> None:
    """Check ``path`` against the SHA-256 prefix in its name (torch.hub's convention)."""
    found = _HASH_IN_NAME.search(path.name)
    if found is None:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(found.group(1)):
        raise ModelError(f"'{path}' fails its checksum (sha256 {digest[:12]}..., expected "
                         f"{found.group(1)}...); delete it and run --init imagenet again")
