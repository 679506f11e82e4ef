"""Small formatting helpers that the report's texts share: a summary entry as 'mean ± sd', a relative link."""

import math
import os
from pathlib import Path


def pm(stat: dict, digits: int = 1) -> str:
    """'mean ± sd' of a summary entry {"mean", "sd"}, or the mean alone when sd is None (one seed) or NaN."""
    mean, sd = stat["mean"], stat["sd"]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    return f"{mean:.{digits}f}" if sd is None or math.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def relative_link(path, report_path) -> str:
    """`path` as a link from the folder of `report_path`."""
    return Path(os.path.relpath(Path(path).resolve(), Path(report_path).resolve().parent)).as_posix()
