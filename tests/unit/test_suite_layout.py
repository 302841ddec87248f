"""The suite's layout: every test module in tests/unit, tests/integration or tests/e2e, and each
test marked with the kind of its folder (`make test-fast` selects by these marks)."""

import pytest

from tests.conftest import KINDS, REPO


def test_every_test_module_is_in_the_folder_of_its_kind():
    tests = REPO / "tests"
    stray = [str(path.relative_to(tests)) for path in tests.rglob("test_*.py")
             if path.relative_to(tests).parts[0] not in KINDS]
    assert stray == []


def test_a_test_carries_the_mark_of_its_folder_only(request):
    assert [kind for kind in KINDS if request.node.get_closest_marker(kind)] == ["unit"]


def test_the_kinds_and_slow_are_registered_marks(pytestconfig):
    registered = {line.split(":")[0] for line in pytestconfig.getini("markers")}
    assert {*KINDS, "slow"} <= registered
    with pytest.raises(pytest.fail.Exception, match="'uint' not found"):  # --strict-markers
        pytest.mark.uint  # noqa: B018
