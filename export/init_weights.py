"""Where the backbone's initial weights come from: ``--init imagenet`` or ``--init FILE``.

Transfer learning from ImageNet was the thesis' main lever: it converged far faster than
training from random weights. ``--init FILE`` reads a local state dict (offline, always).
``--init imagenet`` uses torchvision's own weights API for EfficientNetB0
(``IMAGENET1K_V1``): the first time, on an online machine, torchvision fetches the file
into torch's hub cache (``$TORCH_HOME/hub/checkpoints``) and checks it against the SHA-256
prefix published in its file name; later runs read the cached file, checked the same way,
offline. Nothing is fetched unless ``imagenet`` is asked for.

>>> resolve_init(None) is None
True
>>> resolve_init("weights.pth").name
'weights.pth'
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from endostream.errors import ModelError, UsageError

log = logging.getLogger(__name__)

#: The ``--init`` value that asks for torchvision's ImageNet weights.
IMAGENET = "imagenet"

#: torch.hub's naming rule: ``name-<first hex digits of the file's SHA-256>.ext``.
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def resolve_init(value: str | Path | None) -> Path | None:
    """The local state-dict file for ``--init`` (None: random initialisation)."""
    if value is None:
        return None
    if str(value) == IMAGENET:
        return imagenet_weights()
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
