"""What a study is: its objectives and their directions, the configuration its trials apply
their parameters to (base overrides: the model and other group choices, fixed values), and
its search space. Stored when the study is created and compared on every resume, so one study
name can never silently mix two experiments.

A resume may widen the space (a range that contains the old one, added choices): each
widening is appended to the stored history and named in one line. Anything else is refused
before the sweep writes anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

from sweeplab.compat.optuna import experimental
from sweeplab.errors import ConfigError
from sweeplab.overrides import override_key
from sweeplab.sweep import queries
from sweeplab.sweep import study as stored
from sweeplab.sweep.spaces import shapes_results

__all__ = ["StudyIdentity"]

log = logging.getLogger(__name__)

Space = dict[str, BaseDistribution]
Numeric = FloatDistribution | IntDistribution


@dataclass(frozen=True)
class StudyIdentity:
    """What defines a study; ``custom`` is a custom_search_space's dotted path."""

    directions: list[str]
    objectives: list[str]
    base: list[str]
    space: Space
    custom: str | None = None

    @classmethod
    def stored(cls, study: optuna.Study) -> StudyIdentity | None:
        history = queries.search_space_history(study)
        if not history:  # a study stored before identities were
            return None
        return cls(
            [d.name.lower() for d in study.directions],
            _metric_names(study),
            queries.base_overrides(study),
            {name: json_to_distribution(text) for name, text in history[-1].items()},
            queries.custom_search_space(study),
        )

    def compare_with(self, study: optuna.Study) -> list[str]:
        """The widenings of ``study``'s stored space in this one; a ConfigError, before
        anything is written, if ``study`` is another experiment."""
        before = StudyIdentity.stored(study)
        return [] if before is None else self.compare(before, study.study_name)

    def record(self, study: optuna.Study, widened: list[str]) -> None:
        """Store a new study's identity (or that of one stored before identities were), or
        append a widened space to the stored history."""
        history = queries.search_space_history(study)
        if not history:
            study.set_user_attr(stored.BASE_OVERRIDES, self.base)
            study.set_user_attr(stored.SEARCH_SPACES, [_as_json(self.space)])
            if self.custom:
                study.set_user_attr(stored.CUSTOM_SEARCH_SPACE, self.custom)
            if self.objectives and not _metric_names(study):  # shown by reports, the dashboard
                with experimental():  # metric names: experimental since Optuna 3.2
                    study.set_metric_names(self.objectives)
        elif widened:
            log.info(
                "Study %s resumes with a wider space: %s", study.study_name, "; ".join(widened)
            )
            study.set_user_attr(stored.SEARCH_SPACES, [*history, _as_json(self.space)])

    def compare(self, before: StudyIdentity, name: str) -> list[str]:
        """The widenings of ``before``'s space in this one; ConfigError on any other change."""
        changes = [
            *_changed("objectives", before.objectives, self.objectives),
            *_changed("directions", before.directions, self.directions),
            *_changed_base(before.base, self.base),
            *_changed("custom_search_space", before.custom, self.custom),
        ]
        widened: list[str] = []
        for key in sorted(before.space.keys() | self.space.keys()):
            old, new = before.space.get(key), self.space.get(key)
            if old == new:
                continue
            if old is not None and new is not None and _widens(old, new):
                widened.append(f"{key}: {_show(old)} -> {_show(new)}")
            else:
                changes.append(f"`{key}` was {_show(old)}, now {_show(new)}")
        if changes:
            raise ConfigError(
                f"Study {name!r} is another experiment: " + "; ".join(changes) + ". Resuming "
                "it would compare trials that do not measure the same thing. Run this sweep "
                f"as a new study (name={name}_2, or any new name=...), or resume this one with "
                "its own command (sweeplab best shows its base overrides). Widening a range "
                "or adding choices is allowed."
            )
        return widened


def _metric_names(study: optuna.Study) -> list[str]:
    with experimental():  # metric names: experimental since Optuna 3.2
        return list(study.metric_names or [])


def _changed(what: str, old: Any, new: Any) -> list[str]:
    return [] if old == new else [f"{what} {old} is now {new}"]


def _changed_base(old: Sequence[str], new: Sequence[str]) -> list[str]:
    """Changed base overrides that change results (not where data or logs live)."""
    before, after = _by_key(old), _by_key(new)
    return [
        f"`{before.get(key, key + ' unset')}` is now `{after.get(key, key + ' unset')}`"
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key) and shapes_results(key)
    ]


def _by_key(overrides: Sequence[str]) -> Mapping[str, str]:
    return {override_key(o): o for o in overrides}


def _widens(old: BaseDistribution, new: BaseDistribution) -> bool:
    """Whether ``new`` holds every value of ``old`` and samples the same kind of value."""
    if isinstance(old, CategoricalDistribution) and isinstance(new, CategoricalDistribution):
        return all(choice in new.choices for choice in old.choices)
    if isinstance(old, Numeric) and isinstance(new, Numeric) and type(new) is type(old):
        same_kind = (old.log, old.step) == (new.log, new.step)
        return same_kind and new.low <= old.low and old.high <= new.high
    return False


def _show(distribution: BaseDistribution | None) -> str:
    if distribution is None:
        return "absent"
    if isinstance(distribution, Numeric):
        log_scale = "log " if distribution.log else ""
        step = f" step {distribution.step}" if distribution.step not in (None, 1) else ""
        return f"{log_scale}{distribution.low}..{distribution.high}{step}"
    assert isinstance(distribution, CategoricalDistribution)  # the one other kind sampled
    return f"choice{tuple(distribution.choices)}"


def _as_json(space: Space) -> dict[str, str]:
    return {name: distribution_to_json(d) for name, d in space.items()}
