"""Another commit's ``src/`` run beside this one (the benches' before/after contenders)."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path


def build_extensions(src: Path) -> None:
    """Build the C extension of a source tree in place, as an install would (a tree exported
    with ``git archive`` has only its source; older trees have none)."""
    source = src / "hundi" / "_columns.c"
    if not source.exists():
        return
    built = source.with_name("_columns" + sysconfig.get_config_var("EXT_SUFFIX"))
    include = sysconfig.get_paths()["include"]
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", f"-I{include}", str(source), "-o", str(built)],
        check=True,
    )
