from kard.evaluation import EvalRecord, EvalResult
from kard.metrics import score
from kard.paper import Row, markdown_table, paired_lines


def _row(condition: str, answers: str, gold: str = "AAAAAAAAAA", decoding: str = "greedy") -> Row:
    records = tuple(
        EvalRecord(question_id=f"q{i}", condition=condition, gold=g, answer=a if a != "-" else None,
                   correct=a == g, rationale="", sample_answers=(a,), votes={}, passage_ids=(), tokens_out=1,
                   seconds=0.0)
        for i, (a, g) in enumerate(zip(answers, gold))
    )
    return Row(condition, decoding, EvalResult(condition, score([r.answer for r in records], [r.gold for r in records]),
                                               records))


def test_table_has_interval_unanswered_and_the_papers_figure():
    table = markdown_table([_row("finetune", "AAAAABBBB-"), _row("kard-reranker", "AAAAAAAABB")], "strategyqa")
    finetune, reranker = [line for line in table.splitlines() if line.startswith("| finetune") or
                          line.startswith("| kard-reranker")]
    assert finetune.split("|")[4:7] == [" 50.0 ", " 24-76 ", " 10.0 "]
    assert reranker.rstrip().endswith("| 56.57 |")


def test_paired_lines_count_disagreements_against_kard_bm25():
    rows = [_row("kard-bm25", "AAAAAAAABB"), _row("finetune", "AABBBBBBBA"), _row("kard-bm25", "AAAAAAAAAA", decoding="sc-5")]
    assert paired_lines(rows) == [
        "- kard-bm25 vs finetune: right only with kard-bm25 6, only with finetune 1, both 2, neither 1; p = 0.12"]
    assert paired_lines([_row("finetune", "AAAAAAAAAA")]) == []  # no kard row: nothing to compare with


def test_the_teachers_open_answer_is_judged_as_the_students_are():
    from kard.paper import teacher_row
    from kard.pipeline import make_question

    question = make_question("What gas do plants take in?", qid="open-1", kind="open", answer="carbon dioxide")
    row = teacher_row([question], {"open-1": "Carbon dioxide."})
    assert row.result.records[0].correct and row.result.score.correct == 1
