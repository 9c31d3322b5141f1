"""``codesign repair RUN``: make a run folder's journal readable again and say what was dropped.

A kill or a full disk during a write can leave ``study.journal`` ending in a torn record (every
later append cuts it back by itself); a version of codesign before that could glue the next
generation onto it, and then nothing could read the file. This command cuts a torn tail, salvages
the whole records of damaged lines, removes a lock file a killed process left, and checks that
Optuna reads the result.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from codesign.errors import UserError
from codesign.runs.folder import RUN_FILE
from codesign.search.journal import JournalRepair, repair_journal
from codesign.search.storage import JOURNAL_FILE, open_journal


def repair_run(out: str | Path) -> tuple[JournalRepair, int]:
    """Repair the run folder's journal; returns what was done and how many trials it now holds."""
    out = Path(out)
    run_file = out / RUN_FILE
    if not run_file.is_file():
        raise UserError(f"{out}: not a codesign run folder (no {RUN_FILE}); give the folder `codesign explore` wrote")
    try:
        info = json.loads(run_file.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{run_file}: unreadable run file ({error}); expected the JSON codesign explore wrote") from None
    if info.get("storage_url"):
        raise UserError(f"{out}: its study is in {info['storage_url']}, not in a journal file of the run folder; only journal files are repaired")
    journal = out / JOURNAL_FILE
    if not journal.is_file():
        raise UserError(f"{journal}: no journal file (expected the study of this run)")
    try:
        done = repair_journal(journal)
    except OSError as error:
        raise UserError(f"{journal}: cannot repair: {error.strerror or error}") from None
    storage = open_journal(journal, read_only=True)  # raises UserError if Optuna still cannot read it
    trials = sum(len(optuna.load_study(study_name=s.study_name, storage=storage).get_trials(deepcopy=False))
                 for s in storage.get_all_studies())
    return done, trials
