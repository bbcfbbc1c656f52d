"""The job flow in the members' languages, end to end over the fake Discord: a Japanese member
in a Japanese server runs ``/separate`` with a song link, and the status message and the result
the fake received are Japanese; a bad link is refused privately in Japanese; a Korean member
of that server gets the channel's result in Japanese and their DM copy in Korean."""

from __future__ import annotations

import re
from typing import Any

from babel.messages.pofile import read_po

from bot.policy import GuildPolicy
from bot.sources import StreamingPage
from cogs.i18n import Translations, placeholders
from cogs.separate import source_problem_sentence
from storage.jobstate import JobState
from tests.e2e.commands import set_policy
from tests.e2e.conftest import World
from tests.fakes.discord_models import FakeMessage
from tests.fakes.vidgo import GENERATION_AUDIO_IDS, GENERATION_FILE_STEM, GENERATION_TASK_ID
from tests.test_locales import LOCALES

T = Translations.load()
SONG_LINK = (
    f"https://storage.vidgo.ai/audio/{GENERATION_TASK_ID}/"
    f"{GENERATION_FILE_STEM}_audio_{GENERATION_AUDIO_IDS[0]}.mp3"
)


def english_fragments() -> list[str]:
    """The literal pieces (12+ characters) of every sentence of the catalogs' template that
    Japanese translates differently: none of them may reach a Japanese reader."""
    with (LOCALES / "stemcord.pot").open("rb") as template:
        catalog = read_po(template)
    found: list[str] = []
    for message in catalog:
        if not message.id or message.context is not None:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        for msgid in ids:
            same = {name: f"{{{name}}}" for name in placeholders(msgid)}
            if T.text("ja", msgid, **same) == msgid and not isinstance(message.id, tuple):
                continue
            found += [p for p in re.split(r"\{[a-z_]+\}", msgid) if len(p.strip()) >= 12]
    return found


def shown(message: FakeMessage) -> str:
    """Everything a member reads in a message: content, embeds, component labels."""
    labels = [
        str(component.get("label") or component.get("placeholder") or "")
        for row in message.components
        for component in row.get("components", [])
    ]
    return f"{message.content} {message.embeds} {labels}"


def labels(message: FakeMessage) -> list[str]:
    return [
        str(component.get("label"))
        for row in message.components
        for component in row.get("components", [])
    ]


def embed_of(message: FakeMessage) -> dict[str, Any]:
    [embed] = message.embeds
    return embed


async def run_separate(world: World, locale: str, **options: str) -> Any:
    return await world.discord.invoke_slash(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=world.member.id,
        name="separate",
        options=[{"name": k, "value": v} for k, v in options.items()],
        locale=locale,
        guild_locale=world.guild.preferred_locale,
    )


async def test_a_japanese_member_in_a_japanese_server_reads_the_separation_in_japanese(
    world: World,
) -> None:
    world.guild.preferred_locale = "ja"
    await world.start()
    interaction = await run_separate(world, "ja", link=SONG_LINK)
    job = await world.job_for_task_wait()
    # While the job waits, the status message and its buttons are Japanese.
    await world.discord.wait_until(
        lambda: (
            interaction.original_message is not None and bool(labels(interaction.original_message))
        )
    )
    waiting = interaction.original_message
    assert waiting is not None
    assert labels(waiting) == [T.text("ja", "Refresh"), T.text("ja", "Cancel")]
    await world.vidgo.finish(job.vidgo_task_id or "")
    done = await world.wait_job(job.id, JobState.DELIVERED)

    status = interaction.original_message
    assert status is not None
    await world.discord.wait_until(lambda: not labels(status))  # the end is shown
    embed = embed_of(status)
    assert embed["title"] == T.text("ja", "Stem separation") == "音源分離"
    names = [field["name"] for field in embed["fields"]]
    assert names[:3] == [T.text("ja", "Source"), T.text("ja", "Stems"), T.text("ja", "State")]
    values = {field["name"]: field["value"] for field in embed["fields"]}
    assert values[T.text("ja", "Stems")] == T.text("ja", "vocals + instrumental")
    assert values[T.text("ja", "State")] == T.text(
        "ja", "Done — the stems are in the message below"
    )
    assert embed["footer"]["text"] == T.text("ja", "Job {id}", id=job.id)

    [result] = world.outcome_messages(job.id, world.guild.channel_id)
    mention = f"<@{world.member.id}>"
    assert result.content == T.text("ja", "{member} your stems are ready.", member=mention)
    posted = embed_of(result)
    assert posted["description"].startswith(
        T.plural("ja", "{count} stem ready.", "{count} stems ready.", 2)
    )
    assert posted["footer"]["text"] == T.text("ja", "Job {id}", id=done.id)
    shown_labels = labels(result)
    for english in ("Vocals", "Instrumental", "Get links", "Lyrics", "Change key"):
        assert T.text("ja", english) in shown_labels
        assert english not in shown_labels
    # The attachments' note is Japanese too.
    assert [f for f in posted["fields"] if f["name"] == T.text("ja", "Files")]

    everything = shown(status) + shown(result)
    leaked = [fragment for fragment in english_fragments() if fragment in everything]
    assert leaked == []
    assert world.discord.rule_violations == []


async def test_a_bad_link_is_refused_privately_in_the_members_language(world: World) -> None:
    world.guild.preferred_locale = "ja"
    await world.start()
    refused = await run_separate(world, "ja", link="ftp://example.org/song.mp3")
    await world.discord.wait_until(lambda: bool(refused.responses))
    [response] = refused.responses
    assert response.data is not None and response.data["flags"] & 64  # ephemeral
    expected = T.text(
        "ja",
        "That is not an http(s) link. Paste a link that starts with https://, "
        "or attach the audio file instead.",
    )
    assert response.data["content"] == expected
    assert "http(s) link" not in expected
    # The same mistake by a member whose client speaks Korean, in the same server: Korean.
    korean = await run_separate(world, "ko", link="https://www.youtube.com/watch?v=x")
    await world.discord.wait_until(lambda: bool(korean.responses))
    content = str(korean.responses[0].data["content"])  # type: ignore[index]
    assert content == source_problem_sentence(StreamingPage("YouTube"), T, "ko")
    assert "YouTube" in content and "페이지" in content
    assert world.vidgo.tasks == {}


async def test_the_channel_reads_the_servers_language_and_the_dm_copy_the_members(
    world: World,
) -> None:
    world.guild.preferred_locale = "ja"
    await set_policy(world, GuildPolicy(dm_on_completion=True))
    await world.start()
    await run_separate(world, "ko", link=SONG_LINK)
    job = await world.job_for_task_wait()
    assert job.options["requester_locale"] == "ko"
    assert job.options["server_locale"] == "ja"
    await world.vidgo.finish(job.vidgo_task_id or "")
    await world.wait_job(job.id, JobState.DELIVERED)
    mention = f"<@{world.member.id}>"
    [in_channel] = world.outcome_messages(job.id, world.guild.channel_id)
    assert in_channel.content == T.text("ja", "{member} your stems are ready.", member=mention)
    await world.discord.wait_until(lambda: bool(world.discord.dm_messages(world.member.id)))
    [copy] = world.discord.dm_messages(world.member.id)
    assert copy.content == T.text("ko", "{member} your stems are ready.", member=mention)
    assert T.text("ko", "Vocals") in labels(copy) and T.text("ja", "Vocals") not in labels(copy)
    assert world.discord.rule_violations == []
