"""A fake Hugging Face Hub on 127.0.0.1, for the tests of publishing and loading by Hub id.

This fake Hub is a TEST DOUBLE of the Hub's upload and download endpoints (the one thing these tests
mock: the Hub cannot be reached from here). It implements only what the client calls, as the client calls
it (huggingface_hub 2.x, xet disabled with ``HF_HUB_DISABLE_XET=1``). Uploads:

- ``POST /api/repos/create``                                   → create a repo (409 if it exists)
- ``POST /api/validate-yaml``                                  → parse the README's YAML header
- ``POST /api/{type}s/{org}/{name}/preupload/{rev}``           → "regular" or "lfs" per file
- ``POST /[{type}s/]{org}/{name}.git/info/lfs/objects/batch``  → LFS upload + verify actions
- ``PUT  /lfs-upload/{oid}``, ``POST /lfs-verify``             → LFS storage (sha256 checked)
- ``POST /api/{type}s/{org}/{name}/commit/{rev}``              → NDJSON commit (base64 files / LFS refs)
- ``GET  /api/{type}s/{org}/{name}``                           → repo info (after a 401 on create)
- ``GET  /api/agent-harnesses``                                → the client's best-effort agent registry

Downloads (``snapshot_download`` / ``hf_hub_download``), serving exactly the bytes the commits stored:

- ``GET  /api/{type}s/{org}/{name}/revision/{rev}``            → ``sha`` + ``siblings`` at ``rev``
- ``GET  /api/{type}s/{org}/{name}/tree/{rev}[/{path}]``       → files (git blob oid, size, ``lfs``) and
  folders, ``?recursive=true`` for the whole tree; one page (no ``Link`` header)
- ``HEAD|GET /[{type}s/]{org}/{name}/resolve/{rev}/{path}``   → the file, with ``X-Repo-Commit``,
  ``ETag`` (git blob sha1, or sha256 + ``X-Linked-Etag``/``X-Linked-Size`` for LFS files) and
  ``Content-Length``; ``Range: bytes=a-b`` answered 206. The real Hub redirects LFS files to its CDN;
  here they are served in place, which the client treats alike.

``rev`` is ``main`` or a commit oid (every commit keeps its snapshot); an unknown repo, revision or file
is a 404 with the Hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``), the
header the client turns into its typed errors. Private repos need the token. Every other request is
answered 404 and recorded in ``FakeHub.unexpected``; tests assert it stays empty.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

__all__ = ["LFS_SUFFIXES", "LFS_THRESHOLD", "FakeHub", "FakeRepo"]

# ===================================================================================== fake Hub (test double)
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub sends files above 10 MB through LFS
LFS_SUFFIXES = (".safetensors", ".parquet", ".skops", ".png", ".jpg", ".jpeg", ".webp", ".bin", ".model")
TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass
class FakeRepo:
    repo_type: str
    repo_id: str
    private: bool
    sdk: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict[str, Any]] = field(default_factory=list)
    lfs_paths: set[str] = field(default_factory=set)
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit oid -> files at it

    @property
    def head(self) -> str:
        return self.commits[-1]["oid"] if self.commits else "0" * 40

    def at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """``(commit oid, files)`` at a branch name or commit oid; None when there is no such revision."""
        if revision in ("main", self.head):
            return self.head, self.files
        if revision in self.snapshots:
            return revision, self.snapshots[revision]
        return None

    def tree_entry(self, path: str, data: bytes) -> dict[str, Any]:
        """A file as the tree API lists it: the git blob oid, and for LFS files the pointer's oid + lfs."""
        if path not in self.lfs_paths:
            return {"type": "file", "path": path, "size": len(data), "oid": _git_blob_oid(data)}
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n"
        lfs = {"oid": sha256, "size": len(data), "pointerSize": len(pointer)}
        return {
            "type": "file",
            "path": path,
            "size": len(data),
            "oid": _git_blob_oid(pointer.encode()),
            "lfs": lfs,
        }


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """A running fake Hub. Use as a context manager; ``endpoint`` is the URL to set as ``HF_ENDPOINT``."""

    def __init__(self, token: str = "hf_fake_token_for_tests") -> None:
        self.token = token
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.lfs_store: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.unexpected: list[tuple[str, str]] = []
        self.yaml_validated: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def repo(self, repo_type: str, repo_id: str) -> FakeRepo:
        return self.repos[(repo_type, repo_id)]


def _make_handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    repo_api = re.compile(r"^/api/(model|dataset|space)s/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)$")
    lfs_batch = re.compile(r"^/(datasets/|spaces/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")
    repo_info = re.compile(r"^/api/(model|dataset|space)s/([^/]+/[^/]+)(?:/revision/([^/]+))?$")
    tree = re.compile(r"^/api/(model|dataset|space)s/([^/]+/[^/]+)/tree/([^/]+)(?:/(.+))?$")
    resolve = re.compile(r"^/(datasets/|spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
    prefix_type = {"": "model", "datasets/": "dataset", "spaces/": "space"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        # ---------------------------------------------------------------- plumbing
        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                return self.rfile.read(length)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return b""

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _readable(self, repo_type: str, repo_id: str) -> FakeRepo | None:
            """The repo if this request may read it; else the Hub's answer has been sent and None returned."""
            repo = hub.repos.get((repo_type, repo_id))
            if repo is None:
                self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                return None
            if repo.private and not self._authorised():
                return None
            return repo

        def _at(self, repo: FakeRepo, revision: str) -> tuple[str, dict[str, bytes]] | None:
            found = repo.at(unquote(revision))
            if found is None:
                self._send(404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
            return found

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {hub.token}":
                return True
            self._send(401, {"error": "Invalid credentials in Authorization header"})
            return False

        def _unexpected(self) -> None:
            hub.unexpected.append((self.command, self.path))
            self._send(404, {"error": f"fake Hub: {self.command} {self.path} is not implemented"})

        # ---------------------------------------------------------------- routes
        def do_PUT(self) -> None:  # noqa: N802
            hub.requests.append(("PUT", self.path))
            body = self._body()
            match = re.match(r"^/lfs-upload/([0-9a-f]{64})$", self.path)
            if not match:
                return self._unexpected()
            oid = match.group(1)
            if hashlib.sha256(body).hexdigest() != oid:
                return self._send(400, {"error": "sha256 mismatch"})
            with hub._lock:
                hub.lfs_store[oid] = body
            self._send(200, {})

        def do_POST(self) -> None:  # noqa: N802
            hub.requests.append(("POST", self.path))
            body = self._body()
            path = self.path.split("?")[0]
            if path == "/api/repos/create":
                return self._create(json.loads(body))
            if path == "/api/validate-yaml":
                return self._validate_yaml(json.loads(body))
            if path == "/lfs-verify":
                info = json.loads(body)
                ok = len(hub.lfs_store.get(info["oid"], b"")) == info["size"]
                return self._send(200 if ok else 404, {} if ok else {"error": "object not found"})
            if m := lfs_batch.match(path):
                return self._lfs_batch(json.loads(body))
            if m := repo_api.match(path):
                repo_type, repo_id, action, _revision = m.groups()
                if (repo_type, repo_id) not in hub.repos:
                    return self._send(404, {"error": f"Repository not found: {repo_type} {repo_id}"})
                if not self._authorised():
                    return None
                if action == "preupload":
                    return self._preupload(json.loads(body))
                return self._commit(hub.repo(repo_type, repo_id), body)
            return self._unexpected()

        def do_HEAD(self) -> None:  # noqa: N802
            hub.requests.append(("HEAD", self.path))
            if m := resolve.match(urlsplit(self.path).path):
                return self._resolve(*m.groups())
            self._unexpected()

        def do_GET(self) -> None:  # noqa: N802
            hub.requests.append(("GET", self.path))
            url = urlsplit(self.path)
            if url.path == "/api/agent-harnesses":  # the client's best-effort user-agent registry
                return self._send(200, {"standardEnvVars": [], "harnesses": {}})
            # repo info: create_repo(exist_ok=True) asks it after a 401/403 to learn whether the repo exists;
            # snapshot_download asks it (with /revision/{rev}) for the commit to download
            if m := repo_info.match(url.path):
                repo_type, repo_id, revision = m.groups()
                if (repo := self._readable(repo_type, repo_id)) is None:
                    return None
                if (found := self._at(repo, revision or "main")) is None:
                    return None
                sha, files = found
                siblings = [{"rfilename": name} for name in sorted(files)]
                return self._send(
                    200, {"id": repo.repo_id, "sha": sha, "private": repo.private, "siblings": siblings}
                )
            if m := tree.match(url.path):
                recursive = parse_qs(url.query).get("recursive", [""])[0].lower() == "true"
                return self._tree(*m.groups(), recursive=recursive)
            if m := resolve.match(url.path):
                return self._resolve(*m.groups())
            self._unexpected()

        def _tree(
            self, repo_type: str, repo_id: str, revision: str, folder: str | None, recursive: bool
        ) -> None:
            if (repo := self._readable(repo_type, repo_id)) is None or (
                found := self._at(repo, revision)
            ) is None:
                return None
            _sha, files = found
            folder = unquote(folder or "").strip("/")
            base = f"{folder}/" if folder else ""
            entries: dict[str, dict[str, Any]] = {}
            for path in sorted(files):
                if not path.startswith(base):
                    continue
                parts = path[len(base) :].split("/")
                depth = len(parts) if recursive else 1
                for i in range(1, min(depth, len(parts) - 1) + 1):  # the folders on the way
                    sub = base + "/".join(parts[:i])
                    entries[sub] = {
                        "type": "directory",
                        "path": sub,
                        "oid": _git_blob_oid(sub.encode()),
                        "size": 0,
                    }
                if len(parts) <= depth:
                    entries[path] = repo.tree_entry(path, files[path])
            if folder and not entries:
                return self._send(404, {"error": f"{folder} not found"}, {"X-Error-Code": "EntryNotFound"})
            self._send(200, list(entries.values()))

        def _resolve(self, prefix: str | None, repo_id: str, revision: str, filename: str) -> None:
            if (repo := self._readable(prefix_type[prefix or ""], repo_id)) is None:
                return None
            if (found := self._at(repo, revision)) is None:
                return None
            sha, files = found
            path = unquote(filename)
            if path not in files:
                headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha}
                return self._send(404, {"error": f"{path} does not exist at {sha}"}, headers)
            data = files[path]
            entry = repo.tree_entry(path, data)
            etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
            headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
            if "lfs" in entry:
                headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
            status, body = 200, data
            if m := re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "")):
                start, end = int(m.group(1)), int(m.group(2) or len(data) - 1)
                status, body = 206, data[start : end + 1]
                headers["Content-Range"] = f"bytes {start}-{start + len(body) - 1}/{len(data)}"
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _create(self, payload: dict[str, Any]) -> None:
            if not self._authorised():
                return
            repo_type = payload.get("type") or "model"
            repo_id = f"{payload['organization']}/{payload['name']}"
            if repo_type == "space" and not payload.get("sdk"):
                return self._send(400, {"error": "sdk is required for Spaces"})
            url = f"{hub.endpoint}/{TYPE_PREFIX[repo_type]}{repo_id}"
            with hub._lock:
                if (repo_type, repo_id) in hub.repos:
                    # like the Hub: the 409 body carries the url, which the client returns for exist_ok
                    return self._send(409, {"error": "You already created this model repo", "url": url})
                hub.repos[(repo_type, repo_id)] = FakeRepo(
                    repo_type, repo_id, payload.get("visibility") == "private", payload.get("sdk")
                )
            self._send(200, {"url": url, "name": repo_id})

        def _validate_yaml(self, payload: dict[str, Any]) -> None:
            content = payload["content"]
            hub.yaml_validated.append(payload.get("repoType", "model"))
            match = re.match(r"^---\n(.*?)\n---\n", content, flags=re.S)
            try:
                meta = yaml.safe_load(match.group(1)) if match else {}
            except yaml.YAMLError as exc:
                return self._send(400, {"errors": [{"message": f"invalid YAML: {exc}"}]})
            if not isinstance(meta, dict):
                return self._send(400, {"errors": [{"message": "YAML header is not a mapping"}]})
            self._send(200, {"errors": [], "warnings": []})

        def _preupload(self, payload: dict[str, Any]) -> None:
            files = []
            for f in payload["files"]:
                sample = base64.b64decode(f["sample"])
                lfs = f["size"] >= LFS_THRESHOLD or b"\x00" in sample or f["path"].endswith(LFS_SUFFIXES)
                files.append(
                    {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
                )
            self._send(200, {"files": files, "commitOid": "0" * 40})

        def _lfs_batch(self, payload: dict[str, Any]) -> None:
            if not self._authorised():
                return
            objects = []
            for obj in payload["objects"]:
                entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.lfs_store:
                    entry["actions"] = {
                        "upload": {"href": f"{hub.endpoint}/lfs-upload/{obj['oid']}"},
                        "verify": {"href": f"{hub.endpoint}/lfs-verify"},
                    }
                objects.append(entry)
            self._send(200, {"transfer": "basic", "objects": objects})

        def _commit(self, repo: FakeRepo, body: bytes) -> None:
            if "ndjson" not in self.headers.get("Content-Type", ""):
                return self._send(400, {"error": "commit payload must be application/x-ndjson"})
            header: dict[str, Any] = {}
            added: dict[str, bytes] = {}
            lfs_paths = set()
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    header = value
                elif key == "file":
                    added[value["path"]] = base64.b64decode(value["content"])
                elif key == "lfsFile":
                    data = hub.lfs_store.get(value["oid"])
                    if data is None or len(data) != value["size"]:
                        return self._send(
                            400, {"error": f"LFS object for {value['path']} was never uploaded"}
                        )
                    added[value["path"]] = data
                    lfs_paths.add(value["path"])
                else:
                    return self._send(400, {"error": f"fake Hub: unsupported commit operation {key!r}"})
            if not header.get("summary"):
                return self._send(400, {"error": "commit header without summary"})
            with hub._lock:
                repo.files.update(added)
                repo.lfs_paths |= lfs_paths
                # like git: the parent and the content are in the oid, so each commit is its own snapshot
                content = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(added.items())}
                oid = hashlib.sha1(json.dumps([repo.head, header, content]).encode()).hexdigest()
                repo.commits.append({"oid": oid, "summary": header["summary"], "files": sorted(added)})
                repo.snapshots[oid] = dict(repo.files)
            url = f"{hub.endpoint}/{TYPE_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{oid}"
            self._send(200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None, "success": True})

    return Handler
