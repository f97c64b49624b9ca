"""optuna-dashboard over a search's study, as people should read it (`sandbox dashboard RUN_DIR`).

The study stores over-budget, under-floor, invalid and repeated draws as COMPLETE with a stand-in
value, because GP and NSGA-II learn only from complete trials. The dashboard would plot that value
as a result (a history from 0, a repeat as its own point). `ReadableStorage` is a read-through view
of the storage that shows each such draw as PRUNED with no value and a `why_no_value` attribute,
and shows attributes that are not plain numbers or text (the study's `search` mapping, the
per-image records) in words instead of as escaped JSON. Writes (the dashboard's notes) go through.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Container, Sequence
from typing import Any

from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sandbox.paired import unpack
from sandbox.search.record import correct
from sandbox.search.results import is_result, note


def _through(name: str) -> Callable[..., Any]:
    def method(self: ReadableStorage, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    method.__name__ = name
    return method


_Delegating: Any = type(
    "_Delegating", (BaseStorage,), {name: _through(name) for name in BaseStorage.__abstractmethods__}
)


class ReadableStorage(_Delegating):
    """Every storage call goes to `inner`; trials and user attributes come back readable."""

    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        shown = [readable_trial(t) for t in self.inner.get_all_trials(study_id, deepcopy=False)]
        return [t for t in shown if states is None or t.state in states]

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return readable_trial(self.inner.get_trial(trial_id))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return readable_attrs(self.inner.get_study_user_attrs(study_id))

    def get_all_studies(self) -> list[Any]:
        studies = self.inner.get_all_studies()
        for study in studies:
            study.user_attrs = readable_attrs(study.user_attrs)
        return studies

    def get_study_directions(self, study_id: int) -> Sequence[StudyDirection]:
        return self.inner.get_study_directions(study_id)


def readable_trial(trial: FrozenTrial) -> FrozenTrial:
    """A draw that has no result of its own as PRUNED with no value; every trial's attributes in words."""
    attrs = readable_attrs(trial.user_attrs)
    if trial.state == TrialState.COMPLETE and not is_result(trial):
        attrs["why_no_value"] = f"{note(trial)} (the study stores a stand-in value for the samplers)"
        shown = copy.copy(trial)
        shown.state, shown.values, shown.user_attrs = TrialState.PRUNED, None, attrs
        return shown
    shown = copy.copy(trial)
    shown.user_attrs = attrs
    return shown


def readable_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Numbers and text as they are; a per-image record as its count; mappings and lists as `key: value` text."""
    return {key: _words(key, value) for key, value in attrs.items()}


def _words(key: str, value: Any) -> Any:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if key.startswith(correct("")) and isinstance(value, str):
        bits = unpack(value)
        return f"{int(bits.sum()):,} of {len(bits):,} images right (per-image record)"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_words(k, v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(_words(key, v)) for v in value)
    return value
