"""``dev.py test``'s arguments: which folders run, which paths replace them, what pytest gets."""

import pytest

import dev


def test_by_default_every_folder_runs_and_other_arguments_go_to_pytest():
    assert dev.split_test_args(["-k", "claim", "-x"]) == (
        ["unit", "integration", "acceptance"],
        [],
        ["-k", "claim", "-x"],
        True,
    )


def test_folders_and_tests_only_choose_the_stages():
    folders, paths, rest, lint = dev.split_test_args(["--tests-only", "--folders", "integration"])
    assert (folders, paths, rest, lint) == (["integration"], [], [], False)
    assert dev.split_test_args(["--folders=unit,acceptance"])[0] == ["unit", "acceptance"]


def test_test_paths_are_told_apart_from_pytest_options():
    _, paths, rest, _ = dev.split_test_args(
        ["tests/unit/test_ids.py", "tests/integration/test_engine.py::test_x", "-q"]
    )
    assert paths == ["tests/unit/test_ids.py", "tests/integration/test_engine.py::test_x"]
    assert rest == ["-q"]


@pytest.mark.parametrize("bad", [["--folders", "units"], ["--folders", ""], ["--folders"]])
def test_an_unknown_folder_is_refused_naming_the_choices(bad):
    with pytest.raises(SystemExit, match="unit, integration, acceptance"):
        dev.split_test_args(bad)
