"""The management commands in the members' languages (fast layer): /karaoke settings, /jobs,
the gate's refusals, the page buttons, the allowed-servers answers.

Every expectation is read from the shipped catalogs (``Translations.load()``) and, where it
matters, also spelled out, so a missing catalog entry or a sentence left in English fails.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from unittest import mock

import discord
import pytest

from bot.policy import GuildPolicy, Policies, ServerAllowList
from cogs.gate import (
    admission_gate,
    limit_sentence,
    press_refusal,
    refuse_after_defer,
    rule_refusal,
)
from cogs.i18n import Translations
from cogs.joblist import STATE_WORDS, job_detail_embed, job_line, job_list_embed, state_word
from cogs.karaoke import NOT_A_MANAGER, KaraokeCog, policy_embed
from cogs.owner import ONLY_THE_OWNER
from cogs.pages import Pages
from cogs.servers import LEAVING_NOTICE, NOT_AVAILABLE_HERE, ServerGuardCog, refuse_outside
from storage.base import JobStore
from storage.jobstate import JobState
from storage.records import LimitReached, LimitRule
from tests.cogs.test_jobs import (
    GUILD,
    MANAGER,
    MODERATOR,
    OWNER_ID,
    PLAIN,
    add_job,
    jobs_cog,
    make_interaction,
    sent,
)
from tests.helpers import interaction, job, member, private_answer

T = Translations.load()
ENGLISH = Translations.source_only()
WHEN = 1_800_028_800.0


def speaking(inter: mock.Mock, locale: str, guild_locale: str = "en-US") -> mock.Mock:
    """``inter`` from a member whose client speaks ``locale``."""
    inter.locale = discord.Locale(locale)
    inter.guild_locale = discord.Locale(guild_locale)
    return inter


def fields(embed: discord.Embed) -> dict[str, str]:
    return {str(f.name): str(f.value) for f in embed.fields}


# --- /karaoke settings -----------------------------------------------------------------------


def test_the_settings_embed_in_japanese_and_portuguese() -> None:
    policy = GuildPolicy(
        max_unfinished=2, daily_quota=1500, cooldown_seconds=600, dm_on_completion=True
    )
    ja = policy_embed(T, "ja", policy)
    assert ja.title == T.text("ja", "Stemcord settings") == "Stemcord の設定"
    shown = fields(ja)
    assert (
        shown[T.text("ja", "Allowed channels")]
        == T.text("ja", "everywhere")
        == "すべてのチャンネル"
    )
    assert shown[T.text("ja", "Unfinished jobs per member")] == "2 件"
    daily = T.plural("ja", "{count} job (resets 00:00 UTC)", "", 1500)
    assert shown[T.text("ja", "Daily quota per member")] == daily
    assert daily.startswith("1,500 件") and "00:00 UTC にリセット" in daily
    cooldown = shown[T.text("ja", "Cooldown")]
    assert cooldown.startswith("600 秒") and T.duration("ja", 600) in cooldown
    assert shown[T.text("ja", "DM on completion")] == "オン"
    assert shown[T.text("ja", "Daily cap for the server")] == T.text("ja", "unlimited") == "無制限"
    pt = fields(policy_embed(T, "pt-BR", policy))
    # Portuguese writes thousands with a dot; the plural follows the count.
    assert pt["Cota diária por membro"] == "1.500 tarefas (renova às 00:00 UTC)"
    assert pt["Tarefas não concluídas por membro"] == "2 tarefas"
    assert pt["Intervalo entre pedidos"].startswith("600 segundos (")
    # Every field name and value differs from English (ids and mentions aside).
    english = fields(policy_embed(ENGLISH, "en-US", policy))
    assert set(english).isdisjoint(shown) and set(english).isdisjoint(pt)


async def test_settings_changes_confirm_in_the_members_language(store: JobStore) -> None:
    cog = KaraokeCog(Policies(store), T)
    manager = speaking(make_interaction(member(perms=MANAGER)), "ja")
    await cog.daily_quota.callback(cog, manager, count=3)
    done, kwargs = sent(manager)
    assert done == T.plural("ja", "Daily quota per member: {count} job.", "", 3)
    assert done == "メンバーごとの1日の上限: 3 件。"
    assert kwargs["ephemeral"] and kwargs["embed"].title == "Stemcord の設定"
    spanish = speaking(make_interaction(member(perms=MANAGER)), "es-ES")
    await cog.max_unfinished.callback(cog, spanish, count=1)
    assert sent(spanish)[0] == "Ahora cada miembro puede tener 1 tarea sin terminar a la vez."
    spanish = speaking(make_interaction(member(perms=MANAGER)), "es-ES")
    await cog.cooldown.callback(cog, spanish, seconds=0)
    assert sent(spanish)[0] == T.text("es-ES", "Cooldown between requests: none.")
    korean = speaking(make_interaction(member(perms=MANAGER)), "ko")
    await cog.allow_channel.callback(cog, korean, channel=mock.Mock(id=77))
    assert sent(korean)[0] == "<#77> 채널을 허용했습니다. Stemcord는 허용된 채널에서만 작동합니다."
    korean = speaking(make_interaction(member(perms=MANAGER)), "ko")
    await cog.remove_channel.callback(cog, korean, channel=mock.Mock(id=77))
    assert sent(korean)[0] == T.text(
        "ko",
        "{channel} removed; no channel is listed, so Stemcord runs everywhere.",
        channel="<#77>",
    )
    assert (await store.get_guild_settings(GUILD))["daily_quota"] == 3


async def test_a_refused_setting_and_a_result_channel_the_bot_cannot_use(store: JobStore) -> None:
    cog = KaraokeCog(Policies(store), T)
    moderator = speaking(make_interaction(member(perms=MODERATOR)), "ko")
    await cog.cooldown.callback(cog, moderator, seconds=5)
    assert sent(moderator)[0] == T.text("ko", NOT_A_MANAGER) != NOT_A_MANAGER
    assert "서버 관리" in sent(moderator)[0]
    channel = mock.Mock(spec_set=discord.TextChannel, id=88)
    channel.permissions_for.return_value = discord.Permissions(send_messages=True)
    manager = speaking(make_interaction(member(perms=MANAGER)), "ja")
    await cog.result_channel.callback(cog, manager, channel=channel)
    said = sent(manager)[0]
    assert said.startswith("結果は <#88> に投稿されるようになりました。")
    assert "**メッセージを送信**" in said and "**埋め込みリンク**" in said
    role = mock.Mock(spec_set=discord.Role, id=55)
    manager = speaking(make_interaction(member(perms=MANAGER)), "pt-BR")
    await cog.required_role.callback(cog, manager, role=role)
    assert sent(manager)[0] == (
        "Agora os membros precisam de <@&55> para usar /separar (moderadores sempre podem)."
    )


# --- /jobs -----------------------------------------------------------------------------------


async def test_mine_in_japanese_with_page_buttons(store: JobStore) -> None:
    for index in range(12):
        await add_job(store, f"mine{index:06d}")
    cog, _, _ = jobs_cog(store)
    inter = speaking(make_interaction(member(user_id=42, perms=PLAIN)), "ja")
    await cog.mine.callback(cog, inter)
    _, kwargs = sent(inter)
    embed, view = kwargs["embed"], kwargs["view"]
    assert embed.title == "このサーバーでのあなたのジョブ"
    assert embed.footer.text == T.text("ja", "Page {page}/{pages}", page="1", pages="2")
    assert embed.footer.text == "1/2 ページ"
    assert " · キュー待ち · " in embed.description
    assert [item.label for item in view.children] == ["前へ", "次へ"]
    empty = speaking(make_interaction(member(user_id=5, perms=PLAIN)), "ko")
    await cog.mine.callback(cog, empty)
    assert sent(empty)[1]["embed"].description == (
        "아직 이 서버에 작업이 없습니다. `/음원분리`로 시작해 보세요."
    )


async def test_queue_and_status_in_spanish_and_japanese(store: JobStore) -> None:
    for index in range(3):
        await add_job(store, f"job000000{index}", requester=40 + index)
    cog, _, _ = jobs_cog(store)
    spanish = speaking(make_interaction(member(user_id=5, perms=MODERATOR)), "es-ES")
    await cog.queue.callback(cog, spanish)
    embed = sent(spanish)[1]["embed"]
    assert embed.title == "Cola: 3 tareas sin terminar"
    assert "de <@40>" in embed.description and "en cola" in embed.description
    member_ja = speaking(make_interaction(member(user_id=42, perms=PLAIN)), "ja")
    await cog.queue.callback(cog, member_ja)
    assert sent(member_ja)[0] == T.text(
        "ja", "Only moderators (Manage Messages or the moderator role) can do that."
    )
    status = speaking(make_interaction(member(user_id=41, perms=PLAIN)), "ja")
    await cog.status.callback(cog, status, job="job0000001")
    detail = sent(status)[1]["embed"]
    assert detail.title == "音源分離" and detail.footer.text == "ジョブ job0000001"
    assert fields(detail)["状態"] == "キュー待ち" and fields(detail)["依頼者"] == "<@41>"
    assert fields(detail)["音源"] == "Song job0000001"
    unknown = speaking(make_interaction(member(user_id=41, perms=PLAIN)), "ko")
    await cog.status.callback(cog, unknown, job="nope000001")
    assert sent(unknown)[0] == "이 서버에 `nope000001` 작업이 없습니다."


async def test_cancel_and_retry_answer_in_the_members_language(store: JobStore) -> None:
    await add_job(store, "job0000001", requester=42)
    cog, engine, _ = jobs_cog(store)
    stranger = speaking(make_interaction(member(user_id=5, perms=PLAIN)), "pt-BR")
    await cog.cancel.callback(cog, stranger, job="job0000001")
    assert sent(stranger)[0] == "Só quem pediu esta tarefa, ou um moderador, pode cancelá-la."
    owner = speaking(make_interaction(member(user_id=42, perms=PLAIN)), "ja")
    await cog.cancel.callback(cog, owner, job="job0000001")
    assert sent(owner)[0] == T.text(
        "ja",
        "Cancelled job `{job_id}` ({source}). Vidgo has no way to cancel a task, so it may "
        "still run there, but Stemcord stopped tracking it and will not post its result.",
        job_id="job0000001",
        source="Song job0000001",
    )
    assert sent(owner)[0].startswith("ジョブ `job0000001`")
    again = speaking(make_interaction(member(user_id=42, perms=PLAIN)), "ja")
    await cog.cancel.callback(cog, again, job="job0000001")
    assert sent(again)[0] == T.text(
        "ja",
        "Job `{job_id}` is already {state}; there is nothing to cancel.",
        job_id="job0000001",
        state="キャンセル済み",
    )
    assert "キャンセルするものはありません" in sent(again)[0]
    retry = speaking(make_interaction(member(user_id=5, perms=MODERATOR)), "ko")
    await cog.retry.callback(cog, retry, job="job0000001")
    assert sent(retry)[0] == T.text(
        "ko",
        "Job `{job_id}` is {state}; there is nothing to retry.",
        job_id="job0000001",
        state="취소됨",
    )
    engine.poll_now.assert_not_awaited()
    await add_job(store, "job0000002")
    retry = speaking(make_interaction(member(user_id=5, perms=MODERATOR)), "es-ES")
    await cog.retry.callback(cog, retry, job="job0000002")
    assert sent(retry)[0] == "Consultando ahora a Vidgo por la tarea `job0000002`."


async def test_balance_and_its_refusal_in_the_members_language(store: JobStore) -> None:
    cog, _, _ = jobs_cog(store)
    other = speaking(make_interaction(member(perms=MANAGER, user_id=OWNER_ID + 1)), "ko")
    await cog.balance.callback(cog, other)
    refusal = other.edit_original_response.await_args.kwargs["content"]
    assert refusal == T.text("ko", ONLY_THE_OWNER) == "Vidgo 잔액은 봇 소유자만 볼 수 있습니다."
    owner = speaking(make_interaction(member(perms=PLAIN, user_id=OWNER_ID)), "pt-BR")
    await cog.balance.callback(cog, owner)
    said = owner.edit_original_response.await_args.kwargs["content"]
    assert said.startswith("Créditos restantes na Vidgo: **17.276** (consultado <t:")


async def test_autocomplete_choices_name_the_state_in_the_members_language(
    store: JobStore,
) -> None:
    await add_job(store, "auto000001")
    cog, _, _ = jobs_cog(store)
    inter = speaking(make_interaction(member(user_id=42, perms=PLAIN)), "ja")
    [choice] = await cog.recent_job_ids(inter, "")
    assert choice.name == "auto000001 · キュー待ち · Song auto000001"


def test_every_state_word_is_translated_in_every_language() -> None:
    for locale in ("es-ES", "pt-BR", "ja", "ko"):
        for state, word in STATE_WORDS.items():
            shown = state_word(T, locale, job(state=state, outcome=None))
            assert shown == T.text(locale, word) and shown != word, (locale, state)
    done = job(state=JobState.DELIVERED, outcome=JobState.FAILED)
    assert state_word(T, "ko", done) == "실패"
    posted = job(state=JobState.DELIVERED, result_message_id=555, track={"title": "x"})
    line = job_line(T, "ja", posted, with_requester=True)
    assert "[ステム](https://discord.com/channels/9/7/555)" in line and "依頼者: <@42>" in line


# --- the gate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refused", "locale", "expected"),
    [
        (
            LimitReached(LimitRule.MAX_UNFINISHED, 2, None),
            "ja",
            "このサーバーで未完了のジョブがすでに 2 件あります。",
        ),
        (
            LimitReached(LimitRule.DAILY_QUOTA, 10, WHEN),
            "ko",
            "하루 한도(10개)에 도달했습니다. <t:1800028800:R> 초기화됩니다(00:00 UTC).",
        ),
        (
            LimitReached(LimitRule.SERVER_DAILY_CAP, 1000, WHEN),
            "es-ES",
            "Se ha alcanzado el límite diario de este servidor: 1.000 tareas entre todos; "
            "se reinicia <t:1800028800:R> (00:00 UTC).",
        ),
        (
            LimitReached(LimitRule.COOLDOWN, 30, WHEN),
            "pt-BR",
            "Intervalo entre pedidos: tente de novo <t:1800028800:R>.",
        ),
        (LimitReached(LimitRule.COOLDOWN, 30, None), "ja", "待ち時間中です。少し待って"),
    ],
)
def test_each_limit_sentence_in_another_language(
    refused: LimitReached, locale: str, expected: str
) -> None:
    assert limit_sentence(refused, T, locale).startswith(expected)


def test_rule_refusals_take_the_clients_catalogs_and_the_members_language() -> None:
    # No catalogs passed: the client's (given by the composition root) answer.
    inter = speaking(interaction(channel_id=7), "ko")
    inter.client = mock.Mock(translations=T)
    refusal = rule_refusal(GuildPolicy(allowed_channel_ids=(5, 6)), inter)
    assert refusal == T.text(
        "ko",
        "Stemcord is not available in this channel. Try {channels}.",
        channels="<#5>, <#6>",
    )
    assert refusal == "이 채널에서는 Stemcord를 사용할 수 없습니다. <#5>, <#6>에서 시도해 주세요."
    role = rule_refusal(GuildPolicy(required_role_id=50), speaking(interaction(), "ja"), T)
    assert role == "このサーバーで Stemcord を使うには <@&50> ロールが必要です。"
    # Without any catalogs: English.
    assert rule_refusal(GuildPolicy(required_role_id=50), speaking(interaction(), "ja")) == (
        "You need the <@&50> role to use Stemcord in this server."
    )


async def test_the_early_limit_refusal_and_the_race_fallback_are_translated() -> None:
    policies = mock.Mock(spec_set=Policies)
    policies.get = mock.AsyncMock(return_value=GuildPolicy())
    policies.early_refusal = mock.AsyncMock(
        return_value=LimitReached(LimitRule.DAILY_QUOTA, 3, WHEN)
    )
    gate = await admission_gate(policies, speaking(interaction(), "pt-BR"), T)
    assert gate.refusal == (
        "Você atingiu a cota diária de 3; ela é renovada <t:1800028800:R> (00:00 UTC)."
    )
    lost = speaking(interaction(), "ja")
    await refuse_after_defer(lost, LimitReached(LimitRule.MAX_UNFINISHED, 1, None), T)
    assert private_answer(lost) == T.plural(
        "ja",
        "You already have {count} unfinished job in this server; one frees up when a job "
        "finishes (see `/jobs mine`).",
        "",
        1,
    )


async def test_a_dm_press_without_the_role_is_refused_in_the_members_language() -> None:
    press = speaking(interaction(guild_id=None), "es-ES")
    client = mock.Mock(spec_set=discord.Client)
    client.get_guild.return_value = None
    client.fetch_guild = mock.AsyncMock(side_effect=discord.NotFound(mock.Mock(status=404), ""))
    refusal = await press_refusal(client, press, GuildPolicy(required_role_id=50), job(), T)
    assert refusal == "Necesitas el rol <@&50> en ese servidor para usar este botón."


# --- allowed servers -------------------------------------------------------------------------


async def test_a_server_outside_the_list_hears_its_own_language() -> None:
    allowed = ServerAllowList(frozenset({9}))
    inter = speaking(interaction(guild_id=10), "ja")
    inter.client = mock.Mock(translations=T)
    assert await refuse_outside(inter, allowed) is True
    assert private_answer(inter) == T.text("ja", NOT_AVAILABLE_HERE) != NOT_AVAILABLE_HERE
    guild = mock.Mock(spec_set=discord.Guild, id=10, preferred_locale=discord.Locale.korean)
    guild.leave = mock.AsyncMock()
    channel = mock.Mock(spec_set=discord.TextChannel)
    channel.permissions_for.return_value = discord.Permissions(
        view_channel=True, send_messages=True
    )
    channel.send = mock.AsyncMock()
    guild.system_channel = channel
    await ServerGuardCog(allowed, T).on_guild_join(guild)
    notice = channel.send.await_args.args[0]
    assert notice == T.text("ko", LEAVING_NOTICE) and notice.startswith("안녕하세요!")
    guild.leave.assert_awaited_once()


def test_page_buttons_in_korean() -> None:
    pages = Pages(lambda n: discord.Embed(), 2, owner_id=1, t=T, locale="ko")
    assert (pages.previous.label, pages.next.label) == ("이전", "다음")


# --- Discord's limits in every language ------------------------------------------------------

LOCALES = ("en-US", "es-ES", "pt-BR", "ja", "ko")
TITLE_MAX, DESCRIPTION_MAX, FIELD_NAME_MAX, FIELD_VALUE_MAX = 256, 4096, 256, 1024
FOOTER_MAX, EMBED_TOTAL_MAX, CONTENT_MAX, BUTTON_LABEL_MAX, CHOICE_MAX = 2048, 6000, 2000, 80, 100
BIG_ID = 1_234_567_890_123_456_789


def assert_fits(embed: discord.Embed) -> None:
    data: dict[str, Any] = embed.to_dict()
    assert len(data.get("title", "")) <= TITLE_MAX
    assert 0 < len(data.get("description", "x")) <= DESCRIPTION_MAX
    for field in data.get("fields", []):
        assert 0 < len(field["name"]) <= FIELD_NAME_MAX
        assert 0 < len(field["value"]) <= FIELD_VALUE_MAX
    assert len(data.get("footer", {}).get("text", "")) <= FOOTER_MAX
    assert len(embed) <= EMBED_TOTAL_MAX


def long_jobs() -> list[Any]:
    title = "とても長い曲のタイトル **title** @everyone 한국어 제목도 길다 " * 12
    return [
        job(
            id=f"z{index:09d}",
            requester_id=BIG_ID,
            created_at=4_102_444_800.0,
            track={"title": title},
            state=JobState.DELIVERED,
            result_message_id=BIG_ID,
            result_channel_id=BIG_ID,
            guild_id=BIG_ID,
        )
        for index in range(25)
    ]


@pytest.mark.parametrize("locale", LOCALES)
def test_every_management_surface_fits_discords_limits(locale: str) -> None:
    policy = GuildPolicy(
        allowed_channel_ids=tuple(BIG_ID + i for i in range(300)),
        result_channel_id=BIG_ID,
        required_role_id=BIG_ID,
        moderator_role_id=BIG_ID,
        max_unfinished=100,
        daily_quota=10_000,
        cooldown_seconds=86_399,
        server_daily_cap=100_000,
    )
    assert_fits(policy_embed(T, locale, policy))
    jobs = long_jobs()
    title = T.plural(
        locale,
        "Queue: the oldest {count} unfinished job",
        "Queue: the oldest {count} unfinished jobs",
        500,
    )
    for page in range(3):
        assert_fits(
            job_list_embed(
                T, locale, title, jobs, page=page, pages=3, with_requester=True, empty="-"
            )
        )
    undeliverable = replace(
        jobs[0], state=JobState.UNDELIVERABLE, last_error="Missing Permissions " * 400
    )
    assert_fits(job_detail_embed(T, locale, undeliverable))
    pages = Pages(lambda n: discord.Embed(), 2, owner_id=1, t=T, locale=locale)
    assert all(0 < len(str(b.label)) <= BUTTON_LABEL_MAX for b in (pages.previous, pages.next))
    # Every sentence a management command can say, with the longest values it can carry.
    mention = f"<#{BIG_ID}>"
    sentences = [
        limit_sentence(LimitReached(rule, 100_000, 4_102_444_800.0), T, locale)
        for rule in LimitRule
    ]
    sentences += [T.text(locale, m) for m in (NOT_AVAILABLE_HERE, LEAVING_NOTICE, NOT_A_MANAGER)]
    sentences += [
        T.text(
            locale,
            "Results now go to {channel}; status messages stay where the command ran. I "
            "cannot post there yet: give me **Send Messages** and **Embed Links** in that "
            "channel (until then results go where the command ran).",
            channel=mention,
        ),
        T.text(
            locale,
            "Stemcord is not available in this channel. Try {channels}.",
            channels=", ".join([mention] * 20),
        ),
        T.text(
            locale,
            "Cancelled job `{job_id}` ({source}). Vidgo has no way to cancel a task, so it "
            "may still run there, but Stemcord stopped tracking it and will not post its "
            "result.",
            job_id="z000000000",
            source="x" * 200,
        ),
        T.text(
            locale,
            "Vidgo credits left: **{credits}** (as of {when}). Credits are charged only when "
            "a separation succeeds.",
            credits=T.number(locale, 10**12),
            when="<t:4102444800:R>",
        ),
    ]
    assert all(0 < len(s) <= CONTENT_MAX for s in sentences)


@pytest.mark.parametrize("locale", LOCALES)
async def test_autocomplete_choices_fit_in_every_language(store: JobStore, locale: str) -> None:
    await add_job(store, "long000001")
    cog, _, _ = jobs_cog(store)
    inter = speaking(make_interaction(member(user_id=42, perms=PLAIN)), locale)
    for choice in await cog.recent_job_ids(inter, ""):
        assert 0 < len(choice.name) <= CHOICE_MAX
