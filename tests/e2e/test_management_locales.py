"""The management commands in the members' languages, end to end: what the fake Discord
received when a Japanese member opens ``/karaoke settings show`` and ``/jobs mine`` (and turns
the page), and when a Korean member is refused by the server's rules."""

from __future__ import annotations

from typing import Any

from bot.policy import GuildPolicy
from cogs.i18n import Translations
from cogs.karaoke import NOT_A_MANAGER
from tests.e2e.commands import MANAGER, MEMBER, answer, grant_server_wide, set_policy
from tests.e2e.conftest import World
from tests.e2e.test_jobs import seed_jobs
from tests.fakes.discord_models import FLAG_EPHEMERAL, FakeInteraction, iter_components

T = Translations.load()
BUTTON = 2


async def slash_in(
    world: World,
    name: str,
    locale: str,
    *,
    permissions: str = MEMBER,
    guild_locale: str = "en-US",
    user_id: int | None = None,
    **options: Any,
) -> FakeInteraction:
    """``/name`` run from a client speaking ``locale`` (by the world's member by default)."""
    user_id = user_id or world.member.id
    grant_server_wide(world, user_id, permissions)
    return await world.discord.invoke_slash(
        guild_id=world.guild.id,
        channel_id=world.guild.channel_id,
        user_id=user_id,
        name=name,
        options=[{"name": k, "value": v} for k, v in options.items()],
        permissions=permissions,
        locale=locale,
        guild_locale=guild_locale,
    )


def button_labels(components: list[dict[str, Any]]) -> list[str]:
    return [str(c["label"]) for c in iter_components(components) if c.get("type") == BUTTON]


def sent_payload(interaction: FakeInteraction) -> dict[str, Any]:
    """The first response exactly as the bot sent it to the fake."""
    [response] = interaction.responses
    assert response.data is not None
    return dict(response.data)


async def test_settings_show_in_japanese(world: World) -> None:
    await world.start()
    interaction = await slash_in(
        world, "karaoke settings show", "ja", permissions=MANAGER, guild_locale="ko"
    )
    reply = await answer(world, interaction)
    data = sent_payload(interaction)
    assert data["flags"] & FLAG_EPHEMERAL and reply.ephemeral
    [embed] = data["embeds"]
    # Private: the member's language (Japanese), not the server's (Korean).
    assert embed["title"] == T.text("ja", "Stemcord settings") == "Stemcord の設定"
    shown = {f["name"]: f["value"] for f in embed["fields"]}
    assert shown["使えるチャンネル"] == T.text("ja", "everywhere")
    assert shown["メンバーごとの未完了ジョブ"] == T.plural("ja", "{count} job", "", 2) == "2 件"
    assert shown["メンバーごとの1日の上限"] == T.plural(
        "ja", "{count} job (resets 00:00 UTC)", "", 10
    )
    assert shown["完了時に DM"] == "オフ" and shown["待ち時間"] == "なし"
    # A member without Manage Server is refused in Japanese too.
    other = world.discord.add_user(name="fan").id
    refused = await slash_in(world, "karaoke settings cooldown", "ja", user_id=other, seconds=5)
    await answer(world, refused)
    assert sent_payload(refused)["content"] == T.text("ja", NOT_A_MANAGER)
    assert world.discord.rule_violations == []


async def test_jobs_mine_in_japanese_turns_its_pages(world: World) -> None:
    await world.start()
    await seed_jobs(world, 12, user_id=world.member.id, guild_id=world.guild.id)
    interaction = await slash_in(world, "jobs mine", "ja")
    reply = await answer(world, interaction)
    data = sent_payload(interaction)
    assert data["flags"] & FLAG_EPHEMERAL
    [embed] = data["embeds"]
    assert embed["title"] == T.text("ja", "Your jobs in this server")
    assert embed["footer"]["text"] == "1/2 ページ"
    assert " · キュー待ち · <t:" in embed["description"]
    assert "\\*\\*song\\*\\*" in embed["description"] and "@everyone" not in embed["description"]
    assert button_labels(data["components"]) == ["前へ", "次へ"]
    [next_id] = [
        c["custom_id"] for c in iter_components(reply.components) if c.get("label") == "次へ"
    ]
    edits = len(reply.edits)
    await world.discord.invoke_component(
        guild_id=world.guild.id,
        channel_id=reply.channel_id,
        user_id=world.member.id,
        message_id=reply.id,
        custom_id=next_id,
        locale="ja",
    )
    await world.discord.wait_until(lambda: len(reply.edits) > edits)
    assert reply.embeds[0]["footer"]["text"] == "2/2 ページ"
    assert button_labels(reply.components) == ["前へ", "次へ"]
    assert world.discord.rule_violations == []


async def test_a_korean_member_is_refused_in_korean(world: World) -> None:
    singers = world.discord.add_role(world.guild.id, "singers")
    await set_policy(world, GuildPolicy(required_role_id=singers))
    await world.start()
    interaction = await slash_in(
        world,
        "separate",
        "ko",
        guild_locale="ja",
        link="https://cdn.example.org/songs/refused.mp3",
    )
    await answer(world, interaction)
    data = sent_payload(interaction)
    assert data["flags"] & FLAG_EPHEMERAL
    expected = T.text(
        "ko", "You need the {role} role to use Stemcord in this server.", role=f"<@&{singers}>"
    )
    assert data["content"] == expected
    assert expected == f"이 서버에서 Stemcord를 사용하려면 <@&{singers}> 역할이 필요합니다."
    assert world.vidgo.tasks == {}
    assert world.discord.rule_violations == []


async def test_a_korean_member_over_the_daily_quota_reads_when_it_resets(world: World) -> None:
    await set_policy(world, GuildPolicy(daily_quota=1))
    await world.start()
    first = await slash_in(world, "separate", "ko", link="https://cdn.example.org/songs/a.mp3")
    await answer(world, first)
    second = await slash_in(world, "separate", "ko", link="https://cdn.example.org/songs/b.mp3")
    await answer(world, second)
    content = sent_payload(second)["content"]
    assert content.startswith("하루 한도(1개)에 도달했습니다. <t:")
    assert content.endswith(" 초기화됩니다(00:00 UTC).")
    assert world.discord.rule_violations == []
