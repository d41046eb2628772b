"""`eda`: one HTML page about the training data, so that nobody needs a notebook to look at it.

The rows come from the same readers as `prepare` (`--data KIND=PATH`) or, with only `--cache`,
from a prepared cache's manifest.csv (which holds every labelled row, found or not). With a cache
the report also shows how face detection went per source and uses the cached face crops (what the
classifier sees) in the sample grids. Sections: overview, label counts per head, the 18 classes,
ages with the group boundaries, gender × age group, photos per person, photo sizes, detection,
samples per class. The plots (seaborn on matplotlib's Agg canvas: no display needed) are inlined
as PNG, so report.html is one file to mail or open anywhere; eda.json holds the same numbers.
"""
from __future__ import annotations

import json
import logging
import webbrowser

import numpy as np

from core.atomic import atomic_open
from training.config import EdaConfig
from training.data.eda_page import page_html
from training.data.eda_rows import EdaSummary, read_photos, read_sizes, summarise

log = logging.getLogger(__name__)


def eda(config: EdaConfig) -> EdaSummary:
    """Write <out>/report.html and <out>/eda.json; returns the numbers."""
    photos, records, problems = read_photos(config)
    report = config.out / "report.html"
    summary = summarise(photos, records, report)
    summary.reader_problems = problems
    sizes, unreadable = read_sizes(photos, config.size_sample, config.seed)
    summary.sizes = {"read": len(sizes), "unreadable": unreadable}
    if sizes:
        summary.sizes.update(median_width=int(np.median([w for w, _ in sizes])), median_height=int(np.median([h for _, h in sizes])))
    page = page_html(summary, photos, sizes, config)
    with atomic_open(report, "w", encoding="utf-8") as handle:
        handle.write(page)
    with atomic_open(config.out / "eda.json", "w", encoding="utf-8") as handle:
        json.dump(summary.to_json(), handle, indent=1)
    log.info("%d photos of %d people: %s", summary.photos, summary.people, report)
    if config.open:
        webbrowser.open(report.resolve().as_uri())
    return summary
