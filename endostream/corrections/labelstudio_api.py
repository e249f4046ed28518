"""A client of Label Studio's HTTP API: the one module of the runtime that talks HTTP.

``labelstudio push`` and ``pull`` need a project, a local-files storage, a task import
and a JSON export from the Label Studio server the user names, and nothing else. This
module does exactly that through the documented endpoints (``/api/projects``,
``/api/storages/localfiles``, ``/api/projects/ID/import``, ``/api/projects/ID/export``)
with the standard library's :mod:`urllib.request`, under three rules
(tests/test_security.py allows ``urllib`` here and nowhere else):

- it talks to the ``--url`` the user gave and to nothing else: no proxy from the
  environment, and a redirect to another scheme, host or port is refused;
- every call has a timeout (``timeout_s``), so a server that does not answer is an
  error after that long, never a hang;
- every failure is a :class:`~endostream.errors.LabelStudioError` (exit 10) in one line:
  the server cannot be reached, refuses the token (401/403), has no such project, or
  refuses a request (its own reason, quoted).

The token is Label Studio's access token (Account & Settings): a legacy token goes as
``Authorization: Token T``; a personal access token (a JWT, three dot-separated parts) is
first exchanged for a short-lived access token at ``/api/token/refresh`` and goes as
``Bearer``.

>>> r = build_request("http://ls:8080", "GET", "/api/projects", "T",
...                   query={"title": "a b"})
>>> r.full_url, r.get_header("Authorization"), r.data
('http://ls:8080/api/projects?title=a+b', 'Token T', None)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from endostream.errors import LabelStudioError, UsageError

#: Projects asked for per page when looking one up by title.
PAGE_SIZE = 100
#: What a refused token is told to do.
TOKEN_HINT = ("copy the access token from Label Studio's Account & Settings and give it "
              "with --token")


@dataclass(frozen=True)
class Project:
    """A Label Studio project, as much of it as push and pull need."""

    id: int
    title: str
    label_config: str


def check_url(url: str) -> str:
    """The server's base address without a trailing ``/``; :class:`UsageError` (exit 2)
    for anything but an ``http(s)://host[:port][/path]`` address.

    >>> check_url("http://localhost:8080/")
    'http://localhost:8080'
    >>> check_url("localhost:8080")
    Traceback (most recent call last):
    ...
    endostream.errors.UsageError: --url 'localhost:8080' is not a Label Studio address; give \
it as http://HOST:PORT (e.g. http://localhost:8080)
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise UsageError(f"--url '{url}' is not a Label Studio address; give it as "
                         "http://HOST:PORT (e.g. http://localhost:8080)")
    return url.rstrip("/")


def is_personal_token(token: str) -> bool:
    """Whether ``token`` is a personal access token (a JWT) rather than a legacy one.

    >>> is_personal_token("0123abcd"), is_personal_token("eyJh.eyJ0.c2ln")
    (False, True)
    """
    parts = token.split(".")
    return len(parts) == 3 and all(parts)


def build_request(base: str, method: str, path: str, authorization: str,
                  body: Any = None, *, query: Mapping[str, Any] | None = None,
                  scheme: str = "Token") -> urllib.request.Request:
    """The request for ``method path`` on the server at ``base``: JSON in and out,
    ``Authorization: {scheme} {authorization}``."""
    url = base + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"Accept": "application/json", "Authorization": f"{scheme} {authorization}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    return urllib.request.Request(url, data=data, method=method, headers=headers)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only within the server the user named."""

    def __init__(self, base: str):
        self.base = base

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        target = urllib.parse.urljoin(req.full_url, newurl)
        if _origin(target) != _origin(self.base):
            raise LabelStudioError(f"{self.base} redirected to {target}, another server; "
                                   "give that server's address as --url if it is your "
                                   "Label Studio")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _reason(detail: bytes) -> str:
    """Label Studio's own words for a refusal, on one line."""
    text = detail.decode("utf-8", "replace")
    if text.lstrip().startswith("<"):
        return "a web page, not an answer of Label Studio's API"
    try:
        payload = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200]
    if isinstance(payload, Mapping):
        errors = payload.get("validation_errors") or payload.get("detail") or payload
        payload = errors
    if isinstance(payload, Mapping):
        parts = [f"{k}: {_flat(v)}" if k != "non_field_errors" else _flat(v)
                 for k, v in payload.items()]
        return " ".join("; ".join(parts).split())[:300]
    return " ".join(_flat(payload).split())[:300]


def _flat(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(_flat(v) for v in value)
    return str(value)


class LabelStudio:
    """The server at ``url``, signed in with ``token``; every call within ``timeout_s``."""

    def __init__(self, url: str, token: str, *, timeout_s: float):
        self.url = check_url(url)
        if not token.strip():
            raise UsageError(f"--token is empty; {TOKEN_HINT}")
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _SameOriginRedirects(self.url))
        self._token = token.strip()
        self._scheme = "Token"
        if is_personal_token(self._token):
            access = self._call("POST", "/api/token/refresh", {"refresh": self._token},
                                authorization="")
            if not isinstance(access, Mapping) or not access.get("access"):
                raise LabelStudioError(f"{self.url} gave no access token for the "
                                       f"personal access token; {TOKEN_HINT}")
            self._token, self._scheme = str(access["access"]), "Bearer"

    # -- one call --------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, *,
              query: Mapping[str, Any] | None = None, missing: str | None = None,
              authorization: str | None = None) -> Any:
        """The JSON answer to ``method path``; ``missing`` is the message for a 404."""
        token = self._token if authorization is None else authorization
        request = build_request(self.url, method, path, token, body, query=query,
                                scheme=self._scheme)
        what = f"{method} {path}"
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                text = response.read()
        except urllib.error.HTTPError as e:
            reason = _reason(e.read() or b"")
            if e.code in (401, 403):
                raise LabelStudioError(f"{self.url} refused the token (HTTP {e.code} to "
                                       f"{what}: {reason}); {TOKEN_HINT}") from None
            if e.code == 404 and missing:
                raise LabelStudioError(missing) from None
            raise LabelStudioError(f"{self.url} refused {what} (HTTP {e.code}: {reason})"
                                   ) from None
        except TimeoutError:
            raise LabelStudioError(f"{self.url} did not answer {what} within "
                                   f"{self.timeout_s:g} s; check that Label Studio runs "
                                   "there, or give a longer --timeout") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                raise LabelStudioError(f"{self.url} did not answer {what} within "
                                       f"{self.timeout_s:g} s; check that Label Studio "
                                       "runs there, or give a longer --timeout") from None
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} ({e.reason}); "
                                   "check --url and that the server runs") from None
        except OSError as e:  # a connection reset or closed half way
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} ({e}); check "
                                   "--url and that the server runs") from None
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise LabelStudioError(f"{self.url} answered {what} with something that is not "
                                   "JSON; is --url the address of Label Studio?") from None

    # -- what push and pull need ---------------------------------------------------------

    def project_address(self, project_id: int) -> str:
        """The project's page, for the user's browser."""
        return f"{self.url}/projects/{project_id}"

    def project(self, project_id: int) -> Project:
        """Project ``project_id``; :class:`LabelStudioError` when there is none."""
        answer = self._call("GET", f"/api/projects/{project_id}",
                            missing=f"{self.url} has no project {project_id} (or the "
                                    "token's user cannot see it); check --project")
        return _project(answer, self.url)

    def find_project(self, title: str) -> Project | None:
        """The project titled exactly ``title`` (the lowest id if several), or None."""
        found: list[Project] = []
        page = 1
        while True:
            answer = self._call("GET", "/api/projects",
                                query={"title": title, "page": page, "page_size": PAGE_SIZE})
            rows = answer.get("results", []) if isinstance(answer, Mapping) else answer
            if not isinstance(rows, list):
                raise LabelStudioError(f"{self.url} listed projects in a form this version "
                                       "of endostream does not know; give --project ID")
            found += [_project(r, self.url) for r in rows
                      if isinstance(r, Mapping) and r.get("title") == title]
            total = answer.get("count", 0) if isinstance(answer, Mapping) else 0
            if len(rows) < PAGE_SIZE or page * PAGE_SIZE >= total:
                break
            page += 1
        return min(found, key=lambda p: p.id) if found else None

    def create_project(self, title: str, label_config: str) -> Project:
        answer = self._call("POST", "/api/projects",
                            {"title": title, "label_config": label_config})
        return _project(answer, self.url)

    def set_label_config(self, project_id: int, label_config: str) -> None:
        self._call("PATCH", f"/api/projects/{project_id}", {"label_config": label_config})

    def local_storage_paths(self, project_id: int) -> list[str]:
        """The folders of the project's local-files storages."""
        answer = self._call("GET", "/api/storages/localfiles", query={"project": project_id})
        rows = answer if isinstance(answer, list) else []
        return [str(r.get("path")) for r in rows if isinstance(r, Mapping)]

    def add_local_storage(self, project_id: int, path: str, title: str) -> None:
        """A local-files storage of ``path`` (a folder below the server's
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, never the root itself), not synced: the
        tasks come from push, the storage only lets Label Studio serve the videos."""
        try:
            self._call("POST", "/api/storages/localfiles",
                       {"project": project_id, "path": path, "title": title,
                        "use_blob_urls": True})
        except LabelStudioError as e:
            raise LabelStudioError(f"{e}; Label Studio must run with LABEL_STUDIO_LOCAL_"
                                   "FILES_SERVING_ENABLED=true and LABEL_STUDIO_LOCAL_FILES_"
                                   f"DOCUMENT_ROOT set to a folder above '{path}' (give "
                                   "that folder as --root)") from None

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> int:
        """Import ``tasks`` (with their predictions); how many tasks Label Studio made."""
        answer = self._call("POST", f"/api/projects/{project_id}/import", list(tasks))
        count = answer.get("task_count") if isinstance(answer, Mapping) else None
        return int(count) if isinstance(count, int) else len(tasks)

    def export(self, project_id: int) -> list[Any]:
        """The project's JSON export, every task (annotated or not)."""
        answer = self._call("GET", f"/api/projects/{project_id}/export",
                            query={"exportType": "JSON", "download_all_tasks": "true"},
                            missing=f"{self.url} has no project {project_id} (or the "
                                    "token's user cannot see it); check --project")
        if not isinstance(answer, list):
            raise LabelStudioError(f"{self.url} exported project {project_id} as something "
                                   "other than a list of tasks; export it by hand as JSON "
                                   "and use 'labelstudio import'")
        return answer


def _project(answer: Any, url: str) -> Project:
    if not isinstance(answer, Mapping) or not isinstance(answer.get("id"), int):
        raise LabelStudioError(f"{url} answered with something that is not a project; is "
                               "--url the address of Label Studio?")
    return Project(answer["id"], str(answer.get("title") or ""),
                   str(answer.get("label_config") or ""))
