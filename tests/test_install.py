"""The installed package outside a checkout: `book` and `saved-code` say so in one line."""

import ser_utils.run_context as run_context
from ser_utils.cli import main


def test_book_outside_a_checkout_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_context, "project_root", lambda: tmp_path)
    assert main(["book", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no _toc.yml in") and "checkout" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no artifacts folder made on the way
    assert main(["book", "--from-published", str(tmp_path)]) == 2


def test_saved_code_fails_when_it_finds_no_chapters(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_context, "project_root", lambda: tmp_path)
    assert main(["saved-code"]) == 2
    assert "no chapters (book/*.ipynb)" in capsys.readouterr().err
