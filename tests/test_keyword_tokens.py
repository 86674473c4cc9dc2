"""Keyword tokens people type: identifiers matched whole, quoted phrases, words inside CJK sentences.

Real vaults written to tmp, indexed through the normal pipeline, searched in keyword mode."""

from pathlib import Path

import pytest

from conftest import make_kb
from pai_kb.keyword import parse, segmented
from pai_kb.kb import KnowledgeBase
from pai_kb.models import Filters


def indexed(tmp_path: Path, embedder: object, notes: dict[str, str]) -> KnowledgeBase:
    vault = tmp_path / "vault"
    for name, text in notes.items():
        (vault / name).parent.mkdir(parents=True, exist_ok=True)
        (vault / name).write_text(text, encoding="utf-8")
    kb = make_kb(tmp_path, vault, embedder)
    kb.index()
    return kb


def paths(kb: KnowledgeBase, query: str, k: int = 10) -> list[str]:
    return [h.chunk.path for h in kb.search(query, k=k, mode="keyword")]


DECISIONS = {
    "adr.md": "# Database\n\nDEC-0054: we adopt Postgres for the orders service.\n",
    "log.md": "# Decision log\n\nDEC-0051 chose Redis, DEC-0055 dropped it. See page 0054 of the minutes.\n"
              "Dec 12: the dec review. DEC 0054 was discussed in December.\n",
}


def test_an_identifier_ranks_the_note_holding_it_first(tmp_path, embedder):
    kb = indexed(tmp_path, embedder, DECISIONS)
    assert paths(kb, "DEC-0054") == ["adr.md", "log.md"]  # the other note still follows, on its words
    assert paths(kb, "dec-0054") == ["adr.md", "log.md"]  # case does not matter
    assert paths(kb, "DEC-0054 Redis")[0] == "adr.md"  # a word only the other note has does not outrank it
    scores = [h.score for h in kb.search("DEC-0054", k=5, mode="keyword")]
    assert scores == sorted(scores, reverse=True)
    for glob, expected in (("log*", ["log.md"]), ("adr*", ["adr.md"])):  # both tiers under a filter
        hits = kb.search("DEC-0054", k=5, mode="keyword", filters=Filters.of(path=glob))
        assert [h.chunk.path for h in hits] == expected


def test_a_quoted_query_is_a_phrase_every_result_holds(tmp_path, embedder):
    kb = indexed(tmp_path, embedder, {**DECISIONS, "other.md": "# Other\n\nPostgres: we will adopt it later.\n"})
    assert paths(kb, '"DEC-0054"') == ["adr.md"]
    assert paths(kb, '"adopt Postgres"') == ["adr.md"]
    assert set(paths(kb, "adopt Postgres")) == {"adr.md", "other.md"}
    assert paths(kb, '"Postgres for" orders') == ["adr.md"]
    assert paths(kb, '"we adopt Redis"') == []
    assert paths(kb, 'say "Postgres') == paths(kb, "say Postgres")  # an unpaired quote is ignored


IDENTIFIERS = {
    # note: (its text, a decoy note holding the identifier's parts apart, more often)
    "version": ("Upgrade to v2.3.1 fixed the leak.", "v2 notes: 3 things, 1 fix. v2 again: 3 and 1, 3 and 1."),
    "snake": ("Call snake_case_name here.", "A snake, a case, a name. Snake case name, snake case name."),
    "csharp": ("The service is written in C#.", "C is old. C and C again: c, c, c."),
    "cpp": ("The engine is C++.", "C is old. C and C again: c, c, c."),
    "ticket": ("Fixed in GH#1234 last week.", "GH 1234, gh 1234 and gh 1234 are all mentioned here."),
    "path": ("Edit src/pai_kb/keyword.py to change it.", "keyword py keyword py: the keyword of py."),
}


@pytest.mark.parametrize("name", sorted(IDENTIFIERS))
def test_identifiers_match_whole_and_rank_first(tmp_path, embedder, name):
    text, decoy = IDENTIFIERS[name]
    kb = indexed(tmp_path, embedder, {f"{name}.md": f"# Note\n\n{text}\n", "decoy.md": f"# Decoy\n\n{decoy}\n"})
    identifier = {"version": "v2.3.1", "snake": "snake_case_name", "csharp": "C#", "cpp": "C++",
                  "ticket": "GH#1234", "path": "keyword.py"}[name]
    assert paths(kb, identifier)[0] == f"{name}.md"
    assert paths(kb, f'"{identifier}"') == [f"{name}.md"]


def test_what_the_companion_column_holds():
    assert segmented("DEC-0054: see src/pai_kb/keyword.py.").split() == [
        "DEC\ue02d0054\ue000", "src\ue02fpai\ue05fkb\ue02fkeyword\ue02epy\ue000", "pai\ue05fkb\ue000",
        "keyword\ue02epy\ue000"]
    assert segmented("通知团队。用Python开发") == "通知 知团 团队 用 Python 开发 队 发"
    assert segmented("plain English words only") == ""
    query = parse('"飞书消息" 通知')
    assert query.phrases == ['"飞书 书消 消息"'] and query.words == ["飞书", "书消", "消息", "通知"]


def test_a_held_out_column_takes_its_identifiers_with_it(tmp_path, embedder):
    kb = indexed(tmp_path, embedder, {"a.md": "---\naliases: [ADR-7]\n---\n# Storage\n\nWe keep files.\n"})
    assert [cid for cid, _ in kb.manifest.keyword_search("ADR-7", 5)]
    assert kb.manifest.keyword_search("ADR-7", 5, without=("aliases",)) == []


CJK_NOTES = {
    "zh1.md": "我们决定使用飞书消息通知团队。会议纪要每周五发送。",
    "zh2.md": "下个季度把订单系统的数据库从MySQL迁移到PostgreSQL，预计停机两小时。",
    "zh3.md": "手冲咖啡的水温应该控制在九十二度左右，研磨度要比意式咖啡粗一些。",
    "zh4.md": "明年春天去杭州看西湖，顺便去龙井村买茶叶。",
    "zh5.md": "每天晚上用restic把照片备份到对象存储，密码保存在密码管理器里。",
    "ja1.md": "来週の会議では新しい予算案について話し合います。資料は金曜日までに共有してください。",
    "ja2.md": "駅前のラーメン屋は豚骨スープが濃厚で、替え玉が無料です。",
    "ja3.md": "引っ越しの前に電気とガスの契約を解約する必要があります。",
    "ja4.md": "村上春樹の小説を読み終えたので、次は夏目漱石を読むつもりです。",
    "ko1.md": "다음 주 회의에서 예산안을 검토하고 마케팅 일정을 확정합니다.",
    "ko2.md": "매일 아침 삼십 분 동안 달리기를 하고 물을 충분히 마십니다.",
    "ko3.md": "제주도 여행에서 한라산을 등반하고 흑돼지를 먹었습니다.",
    "en.md": "We decided to notify the team through Feishu messages. Backups run nightly.",
}
# (query, the note that answers it): words inside sentences, not whole runs between punctuation.
CJK_QUERIES = [
    ("飞书", "zh1.md"), ("会议纪要", "zh1.md"), ("用什么通知团队", "zh1.md"), ("数据库", "zh2.md"),
    ("停机", "zh2.md"), ("水温", "zh3.md"), ("西湖", "zh4.md"), ("茶", "zh4.md"), ("照片备份", "zh5.md"),
    ("密码", "zh5.md"), ("予算案", "ja1.md"), ("会議", "ja1.md"), ("豚骨", "ja2.md"), ("替え玉", "ja2.md"),
    ("ラーメンのスープ", "ja2.md"), ("解約", "ja3.md"), ("夏目漱石", "ja4.md"), ("예산안", "ko1.md"),
    ("회의", "ko1.md"), ("달리기", "ko2.md"), ("한라산", "ko3.md"), ("흑돼지", "ko3.md"), ("PostgreSQL", "zh2.md"),
]


def cjk_figures(kb: KnowledgeBase) -> tuple[float, float, list[str]]:
    """hit@1, hit@5 over CJK_QUERIES in keyword mode, and the queries missed at 5."""
    at1 = at5 = 0
    missed = []
    for query, note in CJK_QUERIES:
        found = paths(kb, query, k=5)
        at1 += found[:1] == [note]
        at5 += note in found
        if note not in found:
            missed.append(query)
    return at1 / len(CJK_QUERIES), at5 / len(CJK_QUERIES), missed


def test_words_inside_cjk_sentences_are_found(tmp_path, embedder, capsys):
    kb = indexed(tmp_path, embedder, CJK_NOTES)
    at1, at5, missed = cjk_figures(kb)
    with capsys.disabled():
        print(f"\n[CJK, {len(CJK_NOTES)} notes, {len(CJK_QUERIES)} queries zh/ja/ko] keyword hit@1={at1:.3f} "
              f"hit@5={at5:.3f} missed={missed}")
    assert (at1, at5) == (1.0, 1.0)
    assert paths(kb, "队") == ["zh1.md"]  # the last character of a run
    assert paths(kb, "restic") == ["zh5.md"] and paths(kb, "MySQL") == ["zh2.md"]  # Latin words inside CJK text
    assert paths(kb, '"飞书消息"') == ["zh1.md"] and paths(kb, '"飞书团队"') == []  # a quoted CJK phrase
