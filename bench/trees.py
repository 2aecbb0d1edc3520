"""Another commit's ``src/`` run beside this one (the benches' before/after contenders)."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path


def build_extensions(src: Path) -> None:
    """Build the C extensions of a source tree in place, as an install would (a tree exported
    with ``git archive`` has only their source; older trees have fewer or none)."""
    include = sysconfig.get_paths()["include"]
    for source in sorted(src.glob("hundi/**/_*.c")):
        built = source.with_name(source.stem + sysconfig.get_config_var("EXT_SUFFIX"))
        subprocess.run(
            ["cc", "-shared", "-fPIC", "-O2", f"-I{include}", str(source), "-o", str(built)],
            check=True,
        )
