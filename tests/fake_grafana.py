"""A local stand-in for Grafana's dashboard, folder and search HTTP API (no Grafana runs here).

It follows Grafana's documentation (docs/sources/developers/http_api/dashboard.md, folder.md,
folder_dashboard_search.md) and the save rules of Grafana's dashboard service:

- every request needs ``Authorization: Bearer <token>``: an unknown token is 401, a Viewer's
  write is 403;
- ``POST /api/dashboards/db``: 400 for a missing title, a uid over 40 characters, an unknown
  ``folderUid`` or a provisioned dashboard; without ``overwrite``, 412 ``version-mismatch`` when
  the version differs from the stored one, 412 ``name-exists`` when another dashboard of the
  folder has the title, 412 ``plugin-dashboard`` for a plugin's dashboard; with ``overwrite``, a
  dashboard of the same title in the folder is replaced (it keeps its uid, as in Grafana); each
  save bumps the version and keeps the change message in the version history;
- ``POST /api/folders``: 409 when the uid or the title exists; ``GET`` / ``DELETE`` by uid: 404
  when missing; ``GET /api/search``: ``type``, ``tag`` (all must match), ``limit``, ``page``.

:meth:`FakeGrafana.fail_next` makes the next requests answer a 5xx (or a 429 with ``Retry-After``,
as Grafana's rate limiting and a proxy in front of it answer), to test retries.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EDITOR, VIEWER = "Editor", "Viewer"


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@dataclass
class Stored:
    model: dict[str, Any]
    folder_uid: str
    id: int
    versions: list[tuple[int, str]] = field(default_factory=list)
    plugin_id: str = ""
    provisioned: bool = False

    @property
    def uid(self) -> str:
        return self.model["uid"]

    @property
    def version(self) -> int:
        return self.model["version"]


class FakeGrafana:
    def __init__(self, tokens: dict[str, str]):
        self.tokens = tokens  # token -> role
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, Stored] = {}
        self.requests: list[tuple[str, str]] = []
        self._failures: list[tuple[int, dict[str, str], Any]] = []
        self._ids = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGrafana:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(
        self, count: int, status: int = 503, headers: dict[str, str] | None = None,
        message: str = "Service Unavailable", body: bytes | None = None,
    ) -> None:
        """The next ``count`` requests answer ``status`` with ``headers`` and ``{"message": message}``
        (or ``body`` as it is: what a proxy in front of Grafana may send)."""
        self._failures += [(status, headers or {}, {"message": message} if body is None else body)] * count

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]

    # --- state helpers for tests --------------------------------------------------------------

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_folder(self, uid: str, title: str) -> dict[str, Any]:
        folder = {"id": self.next_id(), "uid": uid, "title": title, "url": f"/dashboards/f/{uid}/{slug(title)}",
                  "version": 1}
        self.folders[uid] = folder
        return folder

    def add_dashboard(self, model: dict[str, Any], folder_uid: str, **extra: Any) -> Stored:
        stored = Stored({**model, "version": 1}, folder_uid, self.next_id(), [(1, "")], **extra)
        stored.model["id"] = stored.id
        self.dashboards[stored.uid] = stored
        return stored

    # --- the API -------------------------------------------------------------------------------

    def _save_dashboard(self, body: Any, role: str) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            return 400, {"message": "bad request data"}
        if role != EDITOR:
            return 403, {"message": "Access denied to save dashboard", "title": "Access denied"}
        model = dict(body["dashboard"])
        overwrite = bool(body.get("overwrite"))
        title = str(model.get("title") or "").strip()
        if not title:
            return 400, {"message": "Dashboard title cannot be empty"}
        uid = model.get("uid") or f"generated{self.next_id()}"
        if len(uid) > 40:
            return 400, {"message": "uid too long, max 40 characters"}
        folder_uid = body.get("folderUid") or ""
        if folder_uid and folder_uid not in self.folders:
            return 400, {"message": "folder not found"}
        existing = self.dashboards.get(uid)
        if existing is not None:
            if existing.provisioned:
                return 400, {"message": "Cannot save provisioned dashboard"}
            if existing.plugin_id and not overwrite:
                return 412, {"status": "plugin-dashboard",
                             "message": f"The dashboard belongs to plugin {existing.plugin_id}."}
            if not overwrite and model.get("version") != existing.version:
                return 412, {"status": "version-mismatch", "message": "The dashboard has been changed by someone else"}
        same_title = next(
            (d for d in self.dashboards.values()
             if d.uid != uid and d.folder_uid == folder_uid and d.model.get("title") == title),
            None,
        )
        if same_title is not None:
            if not overwrite:
                return 412, {"status": "name-exists",
                             "message": "A dashboard with the same name in the folder already exists"}
            existing, uid = same_title, same_title.uid
        version = existing.version + 1 if existing else 1
        stored_id = existing.id if existing else self.next_id()
        history = existing.versions if existing else []
        model.update({"id": stored_id, "uid": uid, "version": version})
        stored = Stored(model, folder_uid, stored_id, [*history, (version, str(body.get("message", "")))])
        self.dashboards[uid] = stored
        return 200, {"id": stored_id, "uid": uid, "url": f"/d/{uid}/{slug(title)}", "status": "success",
                     "version": version, "slug": slug(title)}

    def _create_folder(self, body: Any, role: str) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not str(body.get("title") or "").strip():
            return 400, {"message": "folder title cannot be empty"}
        if role != EDITOR:
            return 403, {"message": "Access denied", "title": "Access denied"}
        uid = body.get("uid") or f"folder{self.next_id()}"
        if uid in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        if any(f["title"] == body["title"] for f in self.folders.values()):
            return 409, {"message": "a folder or dashboard in the general folder with the same name already exists"}
        return 200, self.add_folder(uid, body["title"])

    def _get_dashboard(self, uid: str) -> tuple[int, dict[str, Any]]:
        stored = self.dashboards.get(uid)
        if stored is None:
            return 404, {"message": "Dashboard not found"}
        folder = self.folders.get(stored.folder_uid, {})
        meta = {
            "url": f"/d/{uid}/{slug(stored.model['title'])}", "slug": slug(stored.model["title"]),
            "folderUid": stored.folder_uid, "folderId": folder.get("id", 0),
            "folderTitle": folder.get("title", "General"), "version": stored.version,
            "provisioned": stored.provisioned, "canSave": True, "isStarred": False,
        }
        return 200, {"dashboard": stored.model, "meta": meta}

    def _delete_dashboard(self, uid: str, role: str) -> tuple[int, dict[str, Any]]:
        stored = self.dashboards.get(uid)
        if stored is None:
            return 404, {"message": "Dashboard not found"}
        if role != EDITOR:
            return 403, {"message": "Access denied", "title": "Access denied"}
        if stored.provisioned:
            return 400, {"message": "provisioned dashboard cannot be deleted"}
        del self.dashboards[uid]
        title = stored.model["title"]
        return 200, {"title": title, "message": f"Dashboard {title} deleted", "id": stored.id}

    def _search(self, query: dict[str, list[str]]) -> tuple[int, list[dict[str, Any]]]:
        wanted_tags = set(query.get("tag", []))
        kind = query.get("type", [""])[0]
        limit = min(int(query.get("limit", ["1000"])[0]), 5000)
        page = int(query.get("page", ["1"])[0])
        hits: list[dict[str, Any]] = []
        if kind in ("", "dash-folder") and not wanted_tags:
            hits += [{"id": f["id"], "uid": f["uid"], "title": f["title"], "url": f["url"], "type": "dash-folder",
                      "tags": [], "isStarred": False, "uri": f"db/{slug(f['title'])}"} for f in self.folders.values()]
        if kind in ("", "dash-db"):
            for stored in self.dashboards.values():
                if not wanted_tags <= set(stored.model.get("tags", [])):
                    continue
                folder = self.folders.get(stored.folder_uid, {})
                title = stored.model["title"]
                hits.append({
                    "id": stored.id, "uid": stored.uid, "title": title, "url": f"/d/{stored.uid}/{slug(title)}",
                    "type": "dash-db", "tags": stored.model.get("tags", []), "isStarred": False,
                    "folderUid": stored.folder_uid, "folderTitle": folder.get("title", ""),
                    "folderUrl": folder.get("url", ""), "uri": f"db/{slug(title)}",
                })
        hits.sort(key=lambda h: h["title"].lower())
        return 200, hits[(page - 1) * limit: page * limit]

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, Any] | tuple[int, Any, dict]:
        parts = urlsplit(target)
        path, query = parts.path.rstrip("/"), parse_qs(parts.query)
        with self._lock:
            self.requests.append((method, path))
            if self._failures:
                status, extra_headers, payload = self._failures.pop(0)
                return status, payload, extra_headers
            authorization = headers.get("Authorization", "")
            role = self.tokens.get(authorization.removeprefix("Bearer ")) if authorization.startswith("Bearer ") else None
            if role is None:
                return 401, {"message": "Unauthorized"}
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                return 400, {"message": "bad request data"}
            if method == "POST" and path == "/api/dashboards/db":
                return self._save_dashboard(payload, role)
            if method == "POST" and path == "/api/folders":
                return self._create_folder(payload, role)
            if method == "GET" and path == "/api/search":
                return self._search(query)
            match = re.fullmatch(r"/api/dashboards/uid/([^/]+)", path)
            if match and method == "GET":
                return self._get_dashboard(match[1])
            if match and method == "DELETE":
                return self._delete_dashboard(match[1], role)
            match = re.fullmatch(r"/api/folders/([^/]+)", path)
            if match and method == "GET":
                folder = self.folders.get(match[1])
                return (200, folder) if folder else (404, {"message": "folder not found"})
            return 404, {"message": "Not found"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, payload, *extra = fake.handle(self.command, self.path, self.headers, self.rfile.read(length))
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _answer  # noqa: N815 (http.server's naming)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
