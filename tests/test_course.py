"""Teaching with the book: every chapter opens with objectives, prerequisites, time and exercise compute;
the course pages (syllabus, assignments, exercises, running the course, glossary) are in the table of contents."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from ser_utils.course.runner import read_toc

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
EXERCISE = re.compile(r"^\*\*Exercise (\d+\.\d+)\.\*\*", re.M)


def objectives_problems(cells) -> list[str]:
    """What the objectives cell (right after the title) lacks."""
    if len(cells) < 2 or "objectives" not in cells[1].metadata.get("tags", []):
        return ["cell 1 (after the title) is not the objectives cell (tag 'objectives')"]
    text = cells[1].source
    problems = []
    n = len(re.findall(r"^\d\. ", text, re.M))
    if not 3 <= n <= 5:
        problems.append(f"{n} numbered objectives (need 3-5)")
    for needed in ("**Prerequisites:**", "**Time a student needs:**", "results/reference", "published/run.json"):
        if needed not in text:
            problems.append(f"no {needed}")
    listed = set(re.findall(r"^\| (\d+\.\d+) \|", text, re.M))
    exercises = {m for c in cells if c.cell_type == "markdown" for m in EXERCISE.findall(c.source)}
    if listed != exercises:
        problems.append(f"compute rows {sorted(listed)} do not match the exercises {sorted(exercises)}")
    return problems


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem[:2])
def test_chapter_opens_with_objectives_time_and_exercise_compute(chapter):
    assert objectives_problems(nbformat.read(str(chapter), as_version=4).cells) == []


def test_the_check_catches_a_missing_row_and_a_missing_cell():
    nb = nbformat.read(str(CHAPTERS[0]), as_version=4)
    nb.cells[1].source = re.sub(r"^\| 1\.4 \|.*\n", "", nb.cells[1].source, flags=re.M)
    assert any("do not match" in p for p in objectives_problems(nb.cells))
    assert objectives_problems([nb.cells[0], nb.cells[2]]) != []


def test_course_pages_are_in_the_toc_after_the_chapters():
    _, entries = read_toc(ROOT)
    docs = [e.docname for e in entries]
    pages = ["book/course/syllabus", "book/course/assignments", "book/course/exercises", "book/course/running",
             "book/course/glossary"]
    assert all(p in docs for p in pages)
    assert docs.index(pages[0]) > max(docs.index(f"book/{c.stem}") for c in CHAPTERS)


def test_glossary_defines_the_terms_the_book_uses():
    text = (ROOT / "book" / "course" / "glossary.md").read_text(encoding="utf-8")
    terms = set(re.findall(r"^(\S[^\n]*)\n  ", text.split("```{glossary}")[1], re.M))
    for term in ("UAR", "transductive", "receptive field", "SpecAugment", "probe", "speaker-independent",
                 "deletion test", "test-set selection"):
        assert term in terms, term


def test_syllabus_covers_ten_to_twelve_weeks_every_chapter_and_a_project():
    text = (ROOT / "book" / "course" / "syllabus.md").read_text(encoding="utf-8")
    weeks = re.findall(r"^\| (\d+) \|", text, re.M)
    assert 10 <= len(weeks) <= 12 and weeks == [str(i) for i in range(1, len(weeks) + 1)]
    for k in range(1, 11):
        assert f"Chapter {k}" in text, k
    assert "## The project" in text
