"""`medobs dashboards publish` against a local server that follows Grafana's HTTP API
(tests/fake_grafana.py): no Grafana can run on these machines."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from email.utils import formatdate

import pytest

from dashboards.model import load
from dashboards.publish import redact
from dashboards.provisioning import FOLDER_TITLE, FOLDER_UID
from medobs.core.links import DASHBOARD_UIDS
from tests.conftest import BUILT_DASHBOARDS, free_port, medobs
from tests.fake_grafana import EDITOR, VIEWER, FakeGrafana

TOKEN = "glsa_editor_7f3c9d2e1b8a4c6f"
VIEWER_TOKEN = "glsa_viewer_0a1b2c3d4e5f6a7b"
UIDS = sorted(DASHBOARD_UIDS.values())


@pytest.fixture
def grafana():
    fake = FakeGrafana({TOKEN: EDITOR, VIEWER_TOKEN: VIEWER}).start()
    yield fake
    fake.stop()


def publish(grafana: FakeGrafana, *args: str, token: str | None = TOKEN, url: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    env["GRAFANA_URL"] = url or grafana.url
    if token is not None:
        env["GRAFANA_TOKEN"] = token
    result = medobs("dashboards", "publish", "--retries", "2", *args, env=env)
    for secret in (TOKEN, VIEWER_TOKEN):
        assert secret not in result.stdout + result.stderr, "a token was printed"
    return result


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("medobs dashboards: error: ") and "Traceback" not in line
    return line


def test_first_publish_creates_the_folder_and_every_dashboard(grafana):
    result = publish(grafana)
    assert result.returncode == 0, result.stderr
    assert grafana.folders[FOLDER_UID]["title"] == FOLDER_TITLE
    assert sorted(grafana.dashboards) == UIDS
    for board in load([BUILT_DASHBOARDS]):
        stored = grafana.dashboards[board.uid]
        assert stored.folder_uid == FOLDER_UID
        assert stored.version == 1
        assert {k: v for k, v in stored.model.items() if k not in ("id", "version")} == {
            k: v for k, v in board.model.items() if k not in ("id", "version")
        }
        assert stored.versions[-1][1].startswith("Published by medobs")
    lines = result.stdout.splitlines()
    assert lines[0] == f"folder '{FOLDER_UID}' ({FOLDER_TITLE}): created"
    assert [line.split(":")[0].split(" ")[0] for line in lines[1:]] == [f"[{i}/5]" for i in range(1, 6)]
    assert all(line.endswith("created (version 1)") for line in lines[1:])


def test_second_publish_changes_nothing(grafana):
    assert publish(grafana).returncode == 0
    before = len(grafana.writes())
    result = publish(grafana)
    assert result.returncode == 0, result.stderr
    assert len(grafana.writes()) == before, "the second publish wrote to Grafana"
    assert result.stdout.count("unchanged (version 1)") == 5


def test_an_edited_dashboard_is_updated_with_a_message_and_dry_run_shows_the_diff(grafana, tmp_path):
    assert publish(grafana).returncode == 0
    edited = tmp_path / "dashboards"
    shutil.copytree(BUILT_DASHBOARDS, edited)
    model = json.loads((edited / "gpu.json").read_text())
    panel = next(p for p in model["panels"] if p["title"] == "Temperature")
    panel["title"] = "GPU temperature"
    (edited / "gpu.json").write_text(json.dumps(model))
    writes = len(grafana.writes())

    dry = publish(grafana, "--dry-run", str(edited))
    assert dry.returncode == 0, dry.stderr
    assert len(grafana.writes()) == writes, "--dry-run wrote to Grafana"
    assert "medobs-gpu (GPU): would be updated:" in dry.stdout
    assert '-      "title": "Temperature",' in dry.stdout and '+      "title": "GPU temperature",' in dry.stdout
    assert dry.stdout.count("unchanged (version 1)") == 4

    result = publish(grafana, "--message", "Rename the temperature panel", str(edited))
    assert result.returncode == 0, result.stderr
    stored = grafana.dashboards["medobs-gpu"]
    assert stored.version == 2
    assert stored.versions[-1] == (2, "Rename the temperature panel")
    assert any(p["title"] == "GPU temperature" for p in stored.model["panels"])
    assert "medobs-gpu (GPU): updated (version 2)" in result.stdout
    assert all(grafana.dashboards[uid].version == 1 for uid in UIDS if uid != "medobs-gpu")


def test_a_dashboard_moved_to_another_folder_is_moved_back(grafana):
    assert publish(grafana).returncode == 0
    grafana.add_folder("elsewhere", "Elsewhere")
    grafana.dashboards["medobs-slo"].folder_uid = "elsewhere"
    result = publish(grafana)
    assert result.returncode == 0
    assert grafana.dashboards["medobs-slo"].folder_uid == FOLDER_UID
    assert "medobs-slo (SLOs): updated (version 2)" in result.stdout


def test_401_is_one_clear_line(grafana):
    line = one_line_error(publish(grafana, token="glsa_wrong_token_123"))
    assert "refused the credentials (401 Unauthorized)" in line and "GRAFANA_TOKEN" in line
    assert "glsa_wrong_token_123" not in line
    assert grafana.dashboards == {}


def test_403_is_one_clear_line(grafana):
    line = one_line_error(publish(grafana, token=VIEWER_TOKEN))
    assert "403 Access denied" in line and "Editor role" in line


def test_412_name_exists_is_one_clear_line_and_the_others_go_on(grafana):
    grafana.add_folder(FOLDER_UID, FOLDER_TITLE)
    foreign = grafana.add_dashboard({"uid": "team-gpu", "title": "GPU", "tags": ["team"]}, FOLDER_UID)
    result = publish(grafana)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("[2/5] medobs-gpu (GPU): error: Grafana refused it (412 name-exists: ")
    assert "rename or delete that one" in line
    assert grafana.dashboards["team-gpu"] is foreign and foreign.version == 1, "another team's dashboard was replaced"
    assert sorted(grafana.dashboards) == sorted({*UIDS, "team-gpu"} - {"medobs-gpu"})


def test_409_folder_title_taken_is_one_clear_line(grafana):
    grafana.add_folder("their-folder", FOLDER_TITLE)
    line = one_line_error(publish(grafana))
    assert "409" in line and "--folder-uid" in line
    assert grafana.dashboards == {}


def test_prune_removes_only_managed_dashboards_that_are_no_longer_defined(grafana):
    grafana.add_folder(FOLDER_UID, FOLDER_TITLE)
    grafana.add_dashboard({"uid": "medobs-old-board", "title": "Old board", "tags": ["medobs"]}, FOLDER_UID)
    grafana.add_dashboard({"uid": "copy-of-gpu", "title": "Copy of GPU", "tags": ["medobs", "gpu"]}, FOLDER_UID)
    grafana.add_dashboard({"uid": "medobs-notes", "title": "Notes", "tags": ["team"]}, FOLDER_UID)

    dry = publish(grafana, "--prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "prune medobs-old-board (Old board): would be deleted" in dry.stdout
    assert "medobs-old-board" in grafana.dashboards

    assert publish(grafana).returncode == 0
    assert "medobs-old-board" in grafana.dashboards, "deleted without --prune"

    result = publish(grafana, "--prune")
    assert result.returncode == 0, result.stderr
    assert "prune medobs-old-board (Old board): deleted" in result.stdout
    assert sorted(grafana.dashboards) == sorted({*UIDS, "copy-of-gpu", "medobs-notes"})


def test_5xx_is_retried_with_backoff(grafana):
    grafana.fail_next(2, status=503)
    result = publish(grafana)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("answered 503") == 2 and "retrying in 0.5s" in result.stderr
    assert "retrying in 1s" in result.stderr
    assert sorted(grafana.dashboards) == UIDS


def test_5xx_that_persists_is_one_clear_line(grafana):
    grafana.fail_next(10, status=502)
    result = publish(grafana)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("medobs dashboards: error: Grafana at ") and "answered 502" in line
    assert line.endswith("after 3 attempts")


def retry_delays(result) -> list[float]:
    return [float(seconds) for seconds in re.findall(r"retrying in ([0-9.]+)s", result.stderr)]


def test_429_is_retried_after_retry_after_in_seconds_or_backoff_without_it(grafana):
    grafana.fail_next(1, status=429, headers={"Retry-After": "1"}, message="too many requests")
    grafana.fail_next(1, status=429, message="too many requests")
    result = publish(grafana)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("answered 429 (too many requests)") == 2
    assert retry_delays(result) == [1.0, 1.0]  # as asked, then the second attempt's backoff
    assert sorted(grafana.dashboards) == UIDS


def test_retry_after_as_an_http_date_is_honoured(grafana):
    # Whole seconds, as HTTP dates are: 3 to 4 s from now, less the time the answer takes to arrive.
    grafana.fail_next(1, status=503, headers={"Retry-After": formatdate(time.time() + 4, usegmt=True)})
    started = time.monotonic()
    result = publish(grafana)
    assert result.returncode == 0, result.stderr
    (delay,) = retry_delays(result)
    assert 1.5 <= delay <= 4  # not the 0.5 s backoff
    assert time.monotonic() - started >= delay
    assert sorted(grafana.dashboards) == UIDS


def test_a_retry_after_beyond_the_budget_is_one_clear_line_without_waiting(grafana):
    grafana.fail_next(1, status=429, headers={"Retry-After": "3600"}, message="rate limit exceeded")
    started = time.monotonic()
    line = one_line_error(publish(grafana))
    assert time.monotonic() - started < 10
    assert "answered 429 (rate limit exceeded)" in line and "asks to retry in 3600s" in line
    assert "left of the retry budget" in line
    assert len(grafana.requests) == 1


ECHOED_SECRETS = ("glsa_other_0123456789abcdef", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl",
                  "pr0xy-pa55word", "opaque-4f2a9c17")


def test_grafanas_message_is_cut_short_and_secrets_in_it_are_redacted():
    fake = FakeGrafana({ECHOED_SECRETS[-1]: EDITOR}).start()
    try:
        echo = (f"upstream rejected Authorization: Bearer {ECHOED_SECRETS[-1]}; also saw {ECHOED_SECRETS[0]} "
                f"and {ECHOED_SECRETS[1]} via http://admin:{ECHOED_SECRETS[2]}@proxy:8080/ " + "padding " * 100)
        fake.fail_next(10, status=502, message=echo)
        result = publish(fake, token=ECHOED_SECRETS[-1])
    finally:
        fake.stop()
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]  # after the retries' lines, redacted as well
    for secret in ECHOED_SECRETS:
        assert secret not in result.stdout + result.stderr
    message = re.search(r"answered 502 \((.*?)\) while", line)[1]
    assert message.startswith("upstream rejected Authorization: Bearer [redacted]; also saw [redacted] and [redacted]")
    assert "http://admin:[redacted]@proxy:8080/" in message
    assert len(message) <= 203 and message.endswith("...")


@pytest.mark.parametrize(("body", "problem"), [
    (b"<html><body>Sign in to continue</body></html>", "not JSON"),
    (b'{"message": "ok"}', "the answer has no 'dashboard'"),
    (b'{"dashboard": [1, 2], "meta": {}}', "the answer.dashboard is a list, not an object"),
])
def test_an_answer_that_is_not_grafanas_is_one_clear_line(grafana, body, problem):
    grafana.fail_next(2, status=200, body=body)  # the folder's GET passes; the first dashboard's is this
    line = one_line_error(publish(grafana))
    assert f"answered 200 while reading dashboard '{UIDS[0]}', but not as Grafana's API does ({problem})" in line


@pytest.mark.parametrize(("text", "expected"), [
    ("Authorization: Bearer abc.def-ghi_jkl rejected", "Authorization: Bearer [redacted] rejected"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA== x", "authorization=Basic [redacted] x"),
    ("bad key glsa_AbC123_def456 here", "bad key [redacted] here"),
    ("jwt eyJhbGciOi.eyJzdWIi.c2ln end", "jwt [redacted] end"),
    ("upstream https://admin:hunter2@grafana:3000/api down", "upstream https://admin:[redacted]@grafana:3000/api down"),
    ('{"password": "hunter2", "api_key": "k-123"}', '{"password": "[redacted]", "api_key": "[redacted]"}'),
    ("token=s3cr3t&org=1", "token=[redacted]&org=1"),
    ("the given opaque-token-value echoed", "the given [redacted] echoed"),
    ("Dashboard not found (version 3)", "Dashboard not found (version 3)"),  # nothing secret: untouched
])
def test_redact_covers_each_secret_shape(text, expected):
    assert redact(text, ["opaque-token-value"]) == expected


def test_unreachable_grafana_is_retried_then_one_clear_line(grafana):
    url = f"http://127.0.0.1:{free_port()}"
    result = publish(grafana, url=url)
    assert result.returncode == 2
    assert result.stderr.count("retrying in") == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line == (
        f"medobs dashboards: error: cannot reach Grafana at {url} (ConnectionError) while reading folder "
        f"'{FOLDER_UID}', after 3 attempts"
    )


def test_credentials_in_the_url_are_not_printed(grafana):
    port = free_port()
    result = publish(grafana, url=f"http://admin:s3cret-pass@127.0.0.1:{port}", token=None)
    assert result.returncode == 2
    assert "s3cret-pass" not in result.stderr + result.stdout
    assert f"cannot reach Grafana at http://127.0.0.1:{port} " in result.stderr


def test_token_from_a_file(grafana, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    env.update(GRAFANA_URL=grafana.url, GRAFANA_TOKEN_FILE=str(token_file))
    result = medobs("dashboards", "publish", env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(grafana.dashboards) == UIDS


@pytest.mark.parametrize(("url", "token", "expected"), [
    (None, TOKEN, "GRAFANA_URL is not set"),
    ("ftp://grafana.example", TOKEN, "is not an http(s) URL"),
    ("http://127.0.0.1:1", None, "GRAFANA_TOKEN is not set"),
])
def test_missing_settings_are_one_clear_line(url, token, expected):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFANA_")}
    if url:
        env["GRAFANA_URL"] = url
    if token:
        env["GRAFANA_TOKEN"] = token
    line = one_line_error(medobs("dashboards", "publish", env=env))
    assert expected in line
