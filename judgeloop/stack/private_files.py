"""Files and folders only their owner may read: team mode's passwords and the store beside them."""

import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable and writable by its owner only from the first byte.

    The bytes go to a new file created with mode 0600 in the same folder, which then replaces
    ``path``. Writing first and restricting the mode afterwards would leave the secrets readable
    by everyone in between; an existing file with a wider mode is replaced, not re-used.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates 0600
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def make_private_folder(path: Path) -> None:
    """``path`` as a folder only its owner may enter (0700): created so, or narrowed if it exists."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
