"""A CSV logger whose ``metrics.csv`` survives resumes (imports Lightning: load it lazily).

The classes live at module level so that spawn-DDP can pickle the logger into its workers.
"""

from __future__ import annotations

import csv
import os
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer without the deletion of an existing ``metrics.csv``."""

    def _check_log_dir_exists(self) -> None:
        # Lightning deletes the file here; a resumed run must keep its history instead, so the
        # existing header is adopted and new rows are appended below the old ones.
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as fh:
            header = next(csv.reader(fh), [])
        self.metrics_keys = sorted(header)


class AppendingCSVLogger(CSVLogger):
    """:class:`CSVLogger` whose ``metrics.csv`` survives reruns of the same run."""

    @property
    def experiment(self) -> Any:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment
