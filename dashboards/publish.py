"""``medobs dashboards publish`` (``make dashboards``): the built dashboards into a Grafana, through
its documented HTTP API.

- the folder (``GET`` / ``POST /api/folders``) is created when missing;
- each dashboard is read back (``GET /api/dashboards/uid/:uid``) and posted
  (``POST /api/dashboards/db`` with ``folderUid``, ``overwrite`` and a change ``message``) only
  when its content or folder differs: a second publish changes nothing;
- ``--dry-run`` reads but writes nothing, and prints what would change as a diff;
- ``--prune`` deletes dashboards this package manages (tag ``medobs`` and a ``medobs-`` uid, found
  with ``GET /api/search``) that are no longer defined, and nothing else;
- connection errors, 5xx and 429 answers are retried with exponential backoff, or after the
  answer's ``Retry-After`` (seconds or an HTTP date) when it gives one, as long as the wait fits
  the retry budget (``--retries`` attempts, :data:`RETRY_BUDGET_SECONDS` of waiting in all);
  401, 403, 409 and 412 each get one line saying what to do;
- Grafana's messages are printed cut to :data:`MESSAGE_CHARS` characters, with anything shaped
  like a secret replaced by ``[redacted]`` (see :func:`redact`). The token is sent, never printed.
"""

from __future__ import annotations

import difflib
import email.utils
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from dashboards.model import Board, shape_problem
from dashboards.panels import MANAGED_TAG
from medobs import UserError, __version__
from medobs.core.runtime import read_secret, safe_url

#: Dashboards of this package have uids with this prefix (medobs/links.py); prune needs it and the tag.
UID_PREFIX = "medobs-"
DEFAULT_RETRIES = 4
BACKOFF_SECONDS = 0.5
#: The most a publish waits between attempts in all, Retry-After included.
RETRY_BUDGET_SECONDS = 60.0
#: Statuses worth another attempt besides 5xx: Grafana's (or its proxy's) rate limit.
TOO_MANY_REQUESTS = 429
#: Longest part of a message from Grafana that is printed.
MESSAGE_CHARS = 200
SEARCH_PAGE_SIZE = 5000
#: Fields Grafana sets itself on save; they do not make a dashboard different.
SERVER_FIELDS = ("id", "version")


#: Secret-shaped text, whoever echoes it (Grafana, a proxy in front of it): bearer and basic
#: credentials, Grafana service-account tokens (``glsa_``), JWTs and Grafana API keys (``eyJ...``),
#: passwords in URLs, and ``password=`` / ``token:`` style assignments. Groups 1 to 3 are kept.
_SECRET_SHAPES = re.compile(
    r"(?i)(\b(?:bearer|basic)\s+)[\w.~+/=-]{8,}"
    r"|\bglsa_\w+"
    r"|\beyJ[\w-]*(?:\.[\w-]*)*"
    r"|(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*(?=@)"
    r"|(\b(?:password|passwd|secret|token|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?"
    r"(?:(?:bearer|basic)\s+)?)[^\s\"',;&]+"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets`` and anything secret-shaped replaced by ``[redacted]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _SECRET_SHAPES.sub(lambda match: f"{''.join(g or '' for g in match.groups())}[redacted]", text)


def _retry_after(response: requests.Response) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (None without a readable one)."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when.tzinfo else None


class Refused(Exception):
    """Grafana refused one dashboard (412, 400 ...): reported on its line, the others go on."""


class Grafana:
    """An authenticated Grafana HTTP API client that retries what is worth retrying."""

    def __init__(self, url: str, token: str | None, retries: int = DEFAULT_RETRIES, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.address = safe_url(self.url)
        self.retries = retries
        self.timeout = timeout
        password = urlsplit(self.url).password
        self.secrets = [s for s in (token, password, unquote(password or "")) if s]
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def message(self, response: requests.Response) -> str:
        """What Grafana said in ``response``: its ``message``, redacted and cut short."""
        try:
            body = response.json()
        except ValueError:
            body = response.text.strip() or response.reason
        text = str(body.get("message") or body) if isinstance(body, dict) else str(body)
        text = " ".join(redact(text, self.secrets).split())
        return text if len(text) <= MESSAGE_CHARS else f"{text[:MESSAGE_CHARS]}..."

    def answer(self, response: requests.Response, doing: str, shape: Any, required: Sequence[str] = ()) -> Any:
        """The JSON of a successful ``response``, of ``shape`` (:func:`dashboards.model.shape_problem`)
        with the ``required`` keys; one line otherwise (a proxy's login page, a stranger's API)."""
        try:
            body = response.json()
        except ValueError:
            problem = "not JSON"
        else:
            problem = shape_problem(body, shape, "the answer") or next(
                (f"the answer has no {key!r}" for key in required if key not in body), "")
            if not problem:
                return body
        raise UserError(
            f"Grafana at {self.address} answered {response.status_code} while {doing}, but not as Grafana's API "
            f"does ({problem}): {self.message(response)}"
        )

    def request(self, method: str, path: str, doing: str, **kwargs: Any) -> requests.Response:
        """The answer to the first attempt that connects and is neither a 5xx nor a 429; 401 / 403
        end the run."""
        problem = ""
        waited = 0.0
        attempt = 0
        for attempt in range(self.retries + 1):
            asked = None
            try:
                response = self.session.request(method, f"{self.url}{path}", timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as error:
                problem = f"cannot reach Grafana at {self.address} ({type(error).__name__})"
            else:
                if response.status_code < 500 and response.status_code != TOO_MANY_REQUESTS:
                    self._refuse_unauthorised(response, doing)
                    return response
                problem = f"Grafana at {self.address} answered {response.status_code} ({self.message(response)})"
                asked = _retry_after(response)
            delay = BACKOFF_SECONDS * 2**attempt if asked is None else asked
            if attempt == self.retries or waited + delay > RETRY_BUDGET_SECONDS:
                break
            print(f"  {problem} while {doing}; retrying in {delay:g}s", file=sys.stderr, flush=True)
            time.sleep(delay)
            waited += delay
        if attempt < self.retries and asked is not None:
            raise UserError(
                f"{problem} while {doing}, and asks to retry in {asked:g}s: more than the "
                f"{RETRY_BUDGET_SECONDS - waited:g}s left of the retry budget; try again later"
            )
        raise UserError(f"{problem} while {doing}, after {attempt + 1} attempts")

    def _refuse_unauthorised(self, response: requests.Response, doing: str) -> None:
        if response.status_code == 401:
            raise UserError(
                f"Grafana at {self.address} refused the credentials (401 Unauthorized) while {doing}: "
                "set GRAFANA_TOKEN to a valid service-account token"
            )
        if response.status_code == 403:
            raise UserError(
                f"Grafana at {self.address} denied {doing} (403 Access denied: {self.message(response)}): "
                "give the token's service account the Editor role"
            )


@dataclass(frozen=True)
class Options:
    folder_uid: str
    folder_title: str
    message: str
    dry_run: bool = False
    prune: bool = False


def _comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in dashboard.items() if key not in SERVER_FIELDS}


def _pretty(dashboard: dict[str, Any]) -> list[str]:
    return json.dumps(_comparable(dashboard), indent=2, sort_keys=True).splitlines(keepends=True)


def ensure_folder(grafana: Grafana, options: Options) -> None:
    doing = f"reading folder {options.folder_uid!r}"
    response = grafana.request("GET", f"/api/folders/{options.folder_uid}", doing)
    if response.status_code == 200:
        return
    if response.status_code != 404:
        raise UserError(f"Grafana answered {response.status_code} while {doing}: {grafana.message(response)}")
    if options.dry_run:
        print(f"folder {options.folder_uid!r} ({options.folder_title}): would be created", flush=True)
        return
    doing = f"creating folder {options.folder_uid!r}"
    response = grafana.request(
        "POST", "/api/folders", doing, json={"uid": options.folder_uid, "title": options.folder_title}
    )
    if response.status_code == 409:
        raise UserError(
            f"folder {options.folder_title!r} already exists in Grafana with another uid (409 {grafana.message(response)}): "
            f"pass --folder-uid with its uid, or --folder-title with another title"
        )
    if response.status_code != 200:
        raise UserError(f"Grafana answered {response.status_code} while {doing}: {grafana.message(response)}")
    print(f"folder {options.folder_uid!r} ({options.folder_title}): created", flush=True)


_PRECONDITION_HINTS = {
    "name-exists": "another dashboard in the folder has this title (or uid): rename or delete that one",
    "version-mismatch": "someone changed it in Grafana while publishing: run publish again",
    "plugin-dashboard": "it belongs to a Grafana plugin: remove the plugin's copy first",
}


def publish_one(grafana: Grafana, board: Board, options: Options) -> str:
    """Bring one dashboard up to date; returns what happened (raises Refused when Grafana refuses)."""
    doing = f"reading dashboard {board.uid!r}"
    response = grafana.request("GET", f"/api/dashboards/uid/{board.uid}", doing)
    if response.status_code not in (200, 404):
        raise Refused(f"Grafana answered {response.status_code} while {doing}: {grafana.message(response)}")
    existing = None
    if response.status_code == 200:
        existing = grafana.answer(response, doing, {"dashboard": dict, "meta": dict}, required=("dashboard",))
    if existing is not None:
        same_content = _comparable(existing["dashboard"]) == _comparable(board.model)
        same_folder = existing.get("meta", {}).get("folderUid") == options.folder_uid
        if same_content and same_folder:
            return f"unchanged (version {existing['dashboard'].get('version')})"
    if options.dry_run:
        if existing is None:
            return f"would be created in folder {options.folder_uid!r}"
        diff = difflib.unified_diff(
            _pretty(existing["dashboard"]), _pretty(board.model), f"grafana/{board.uid}", f"{board.path}"
        )
        moved = "" if existing.get("meta", {}).get("folderUid") == options.folder_uid else f", moved to {options.folder_uid!r}"
        return f"would be updated{moved}:\n" + "".join(diff).rstrip("\n")
    body = {
        "dashboard": {**board.model, "id": None},
        "folderUid": options.folder_uid,
        # Overwrite only our own uid; a new dashboard must not replace one of the same title.
        "overwrite": existing is not None,
        "message": options.message,
    }
    doing = f"saving dashboard {board.uid!r}"
    response = grafana.request("POST", "/api/dashboards/db", doing, json=body)
    if response.status_code == 412:
        try:
            status = str(response.json().get("status"))
        except (ValueError, AttributeError):
            status = "unknown"
        hint = _PRECONDITION_HINTS.get(status, "see Grafana's message")
        raise Refused(f"Grafana refused it (412 {redact(status)[:40]}: {grafana.message(response)}): {hint}")
    if response.status_code != 200:
        raise Refused(f"Grafana answered {response.status_code} while {doing}: {grafana.message(response)}")
    version = grafana.answer(response, doing, dict).get("version")
    return f"{'updated' if existing else 'created'} (version {version})"


def managed_dashboards(grafana: Grafana) -> list[dict[str, Any]]:
    """Dashboards in Grafana that this package manages: tagged ``medobs`` with a ``medobs-`` uid."""
    found: list[dict[str, Any]] = []
    page = 1
    while True:
        params = {"type": "dash-db", "tag": MANAGED_TAG, "limit": SEARCH_PAGE_SIZE, "page": page}
        response = grafana.request("GET", "/api/search", "searching for managed dashboards", params=params)
        if response.status_code != 200:
            raise UserError(f"Grafana answered {response.status_code} to a dashboard search: {grafana.message(response)}")
        hits = grafana.answer(response, "searching for managed dashboards", [{"tags": list}])
        found += [h for h in hits if str(h.get("uid", "")).startswith(UID_PREFIX) and MANAGED_TAG in h.get("tags", [])]
        if len(hits) < SEARCH_PAGE_SIZE:
            return found
        page += 1


def prune(grafana: Grafana, keep: set[str], dry_run: bool) -> int:
    stale = sorted((h for h in managed_dashboards(grafana) if h["uid"] not in keep), key=lambda h: h["uid"])
    if not stale:
        print("prune: no managed dashboard left to delete", flush=True)
    for hit in stale:
        if dry_run:
            print(f"prune {hit['uid']} ({hit.get('title')}): would be deleted", flush=True)
            continue
        doing = f"deleting dashboard {hit['uid']!r}"
        response = grafana.request("DELETE", f"/api/dashboards/uid/{hit['uid']}", doing)
        if response.status_code not in (200, 404):
            raise UserError(f"Grafana answered {response.status_code} while {doing}: {grafana.message(response)}")
        print(f"prune {hit['uid']} ({hit.get('title')}): deleted", flush=True)
    return len(stale)


def publish(grafana: Grafana, boards: Sequence[Board], options: Options) -> int:
    """Publish every board, printing one progress line each; returns the exit status."""
    ensure_folder(grafana, options)
    failed = 0
    for index, board in enumerate(boards, 1):
        prefix = f"[{index}/{len(boards)}] {board.uid} ({board.title})"
        try:
            outcome = publish_one(grafana, board, options)
        except Refused as error:
            print(f"{prefix}: error: {error}", file=sys.stderr, flush=True)
            failed += 1
            continue
        print(f"{prefix}: {outcome}", flush=True)
    if options.prune and failed:
        print(f"prune: skipped, {failed} dashboards were not published", file=sys.stderr, flush=True)
    elif options.prune:
        prune(grafana, {board.uid for board in boards}, options.dry_run)
    return 1 if failed else 0


def connect(url: str | None, retries: int) -> Grafana:
    """A client for ``url`` (``$GRAFANA_URL``) with ``$GRAFANA_TOKEN`` (or ``$GRAFANA_TOKEN_FILE``)."""
    if retries < 0:
        raise UserError(f"--retries {retries}: give 0 or more")
    if not url:
        raise UserError("GRAFANA_URL is not set: export GRAFANA_URL=https://grafana.example.org (or pass --grafana-url)")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"GRAFANA_URL {safe_url(url)!r} is not an http(s) URL")
    token = read_secret("GRAFANA_TOKEN")
    if not token and parts.username is None:
        raise UserError(
            "GRAFANA_TOKEN is not set: create a service-account token with the Editor role in Grafana and "
            "export GRAFANA_TOKEN (or GRAFANA_TOKEN_FILE)"
        )
    return Grafana(url, token, retries)


def default_message() -> str:
    return f"Published by medobs {__version__} (medobs dashboards publish)"
