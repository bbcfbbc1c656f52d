"""The Discord side of a job kind: one object per kind, listed once by the composition root.

The engine knows a kind by its :class:`bot.kinds.JobKind`; Discord knows it by a
:class:`KindView`: how its status is worded, how its one outcome message looks, what a member
is told when it is asked for, which buttons it puts on other results (Lyrics and MIDI offer
theirs on separation results), and which restart-proof buttons it listens to. Nothing is
registered by importing a module: :class:`KindViews` is built from the list the composition
root passes, and a job of a kind without a view is shown with the separation's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import discord

from bot.engine import JobEngine
from bot.jobs import Submitted
from bot.policy import Policies
from cogs.buttons import ButtonHandler, JobControls
from cogs.desk import JobDesk
from cogs.i18n import LocaleLike, Translations
from cogs.render import KindWords, Outcome
from storage.jobstate import JobState
from storage.records import Admission, JobRecord

Item = discord.ui.Item[Any]
# A restart-proof component a kind listens to: a job button, or a menu (the key picker).
JobItem = discord.ui.DynamicItem[Any]


@dataclass(frozen=True, slots=True)
class PressServices:
    """What a kind's buttons may use when pressed (given when the buttons are bound)."""

    engine: JobEngine
    policies: Policies
    desk: JobDesk
    controls: JobControls


def where_sentence(t: Translations, locale: LocaleLike, where: int | None) -> str:
    """Where a privately asked result is posted: a channel, or (``None``) as a reply to the
    result it was asked from. Its own sentence, so no answer is glued from pieces."""
    if where is None:
        return t.text(locale, "Where: as a reply to this result.")
    channel = f"<#{where}>"
    return t.text(locale, "Where: {channel}.", channel=channel)


class KindView(ABC):
    """Everything Discord shows and hears about one kind of job.

    Every text is in the language of the ``locale`` it is asked for: the server's for what
    is posted in a channel, the requester's for what reaches them privately or by DM
    (docs/localisation.md); ``t`` holds the catalogs.
    """

    #: The kind's name, as the engine stores it (``JobRecord.kind``).
    kind: str
    words: KindWords

    def __init__(self, *, translations: Translations) -> None:
        self.t = translations

    @abstractmethod
    def render(self, job: JobRecord, locale: LocaleLike) -> Outcome:
        """The job's one outcome message."""

    @abstractmethod
    def failure_sentence(self, job: JobRecord, locale: LocaleLike) -> str:
        """Why the job has no result, in one sentence a member can act on."""

    def status_details(self, job: JobRecord, locale: LocaleLike) -> list[tuple[str, str]]:
        """The kind's own fields on the status message (name, value)."""
        return []

    def offer(self, job: JobRecord, locale: LocaleLike) -> Item | None:
        """A button this kind puts on another job's result message (``None``: none)."""
        return None

    def buttons(self) -> Iterable[type[JobItem]]:
        """This kind's restart-proof buttons and menus (registered with the client)."""
        return ()

    def routes(self, services: PressServices) -> dict[str, ButtonHandler]:
        """The handlers of this kind's buttons, by action (given to the client's router)."""
        return {}

    def admitted(self, submitted: Submitted, where: int | None, locale: LocaleLike) -> str:
        """The private answer to a request that did not open a status message.

        ``where`` is the channel the result goes to (``None``: as a reply to the result it
        was asked from).
        """
        t = self.t
        job = submitted.job
        if submitted.admission is Admission.JOINED:
            return t.text(
                locale, "Someone asked for the same a moment ago; it is on its way to you too."
            )
        if submitted.admission is Admission.CACHED:
            said = t.text(locale, "This was made before, so it is posted again now.")
        elif submitted.admission is Admission.DROPPED:
            said = t.text(locale, "It is already on its way and will be posted once.")
        elif job.outcome is JobState.SUCCEEDED:
            said = t.text(locale, "Done — it is posted.")
        elif job.outcome is not None:
            said = t.text(locale, "That did not work — the reason is posted.")
        else:
            said = t.text(
                locale, "Working on it (job `{job}`) — it will be posted when ready.", job=job.id
            )
        return f"{said} {where_sentence(t, locale, where)}"


class KindViews:
    """The views of every kind this bot runs, by kind name."""

    def __init__(self, views: Iterable[KindView], *, fallback: str) -> None:
        listed = list(views)
        self._views = {view.kind: view for view in listed}
        if len(self._views) != len(listed):
            raise ValueError("two views show the same kind")
        if fallback not in self._views:
            raise ValueError(f"no view for the fallback kind {fallback!r}")
        self._fallback = self._views[fallback]

    def of(self, job: JobRecord) -> KindView:
        """The view of the job's kind (the fallback kind's for a kind no longer shown)."""
        return self.named(job.kind)

    def named(self, kind: str) -> KindView:
        """The view of a kind by its name (the fallback kind's for a kind no longer shown)."""
        return self._views.get(kind, self._fallback)

    def __iter__(self) -> Iterator[KindView]:
        return iter(self._views.values())

    def posted_sentence(self, kind: str, link: str, locale: LocaleLike) -> str:
        """How a member is told that this kind's result is already posted (at ``link``)."""
        view = self.named(kind)
        return view.words.say(view.t, locale, view.words.posted, link=link)

    def admitted(
        self, kind: str, submitted: Submitted, where: int | None, locale: LocaleLike
    ) -> str:
        """The private answer to a request of ``kind`` (see :meth:`KindView.admitted`)."""
        return self.named(kind).admitted(submitted, where, locale)

    def offers(self, job: JobRecord, locale: LocaleLike) -> list[Item]:
        """The buttons every kind puts on this job's result message."""
        return [
            item for view in self._views.values() if (item := view.offer(job, locale)) is not None
        ]

    def buttons(self) -> list[type[JobItem]]:
        """Every kind's restart-proof buttons and menus."""
        return [button for view in self._views.values() for button in view.buttons()]

    def routes(self, services: PressServices) -> dict[str, ButtonHandler]:
        """Every kind's button handlers, by action."""
        return {
            action: handler
            for view in self._views.values()
            for action, handler in view.routes(services).items()
        }
