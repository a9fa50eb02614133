"""Files that ship inside a package (bundled weights, reports), found the way an installed
package finds them: through ``importlib.resources`` of the package that owns them."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from painter.errors import CheckpointError


def bundled_path(package: str, name: str) -> Path:
    """The path of ``name`` (a "/"-separated path) inside ``package``; it may not exist yet
    (bundled weights are built by a make target).

    Packages are installed as plain folders (``pip install`` / editable), so the resource is a
    file on disk; a zipped install is refused with a clear message.
    """
    resource = files(package).joinpath(*name.split("/"))
    if not isinstance(resource, Path):
        raise CheckpointError(
            f"{package} is installed in a form without plain files ({type(resource).__name__}); "
            "install it as a folder (pip install, not a zip) to use its bundled files"
        )
    return resource
