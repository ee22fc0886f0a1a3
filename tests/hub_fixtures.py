"""The Hugging Face Hub without a network, for tests of Hub names (`zoo.hub`):

- `add_repo(cache, "org/name", files)`: a cache folder laid out as `huggingface_hub` writes
  it (`models--ORG--NAME/refs/main` the commit, `blobs/<hash>` the contents,
  `snapshots/<commit>/<file>` relative symlinks to them); a file given as a `Path` is linked,
  not copied. `offline(cache)` sets `HF_HUB_CACHE` and `HF_HUB_OFFLINE=1` for a `with` block.
- `FakeHub({"org/name": files})`: a local HTTP server that answers the requests
  `huggingface_hub` makes (model info, the file tree, HEAD and GET of `resolve/`), with the
  Hub's error codes for unknown repos and revisions; it records the files it sent.
- `silent_server()`: a port that accepts connections and never answers (a network that
  swallows packets).
"""

import contextlib
import hashlib
import json
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock
from urllib.parse import unquote, urlsplit


def commit_of(repo_id, ref="main"):
    """The (made-up, fixed) 40-hex commit a test repo's `ref` points at."""
    return hashlib.sha1(f"{repo_id}@{ref}".encode()).hexdigest()


def add_repo(cache, repo_id, files, ref="main"):
    """Add `files` ({name: bytes or Path}) as the snapshot of `repo_id` at `ref`; returns
    the snapshot folder."""
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    commit = commit_of(repo_id, ref)
    snapshot = repo / "snapshots" / commit
    for name, content in files.items():
        blob = repo / "blobs" / hashlib.sha256(f"{commit}/{name}".encode()).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            blob.symlink_to(content.resolve())
        else:
            blob.write_bytes(content)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return snapshot


def folder_files(folder):
    """{name: Path} of the files at the top of `folder`."""
    return {p.name: p for p in Path(folder).iterdir() if p.is_file()}


@contextlib.contextmanager
def offline(cache):
    """`HF_HUB_CACHE=cache` and `HF_HUB_OFFLINE=1` inside the block."""
    with mock.patch.dict(os.environ, {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}):
        yield


class FakeHub:
    """A Hub at `self.endpoint` serving `repos` ({repo_id: {path: bytes or Path}}) at the
    revision `main`; `self.sent` lists the `repo_id/path` of every file body sent."""

    def __init__(self, repos):
        self.repos = {repo: {name: c.read_bytes() if isinstance(c, Path) else c
                             for name, c in files.items()} for repo, files in repos.items()}
        self.sent = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, args=(0.01,),
                         daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.do_GET(body=False)

            def do_GET(self, body=True):
                path = unquote(urlsplit(self.path).path)
                for pattern, answer in ((_INFO, hub._info), (_TREE, hub._tree),
                                        (_RESOLVE, hub._resolve)):
                    match = re.fullmatch(pattern, path)
                    if match:
                        status, headers, content = answer(**match.groupdict())
                        break
                else:
                    status, headers, content = 404, {"X-Error-Code": "EntryNotFound"}, b""
                self.send_response(status)
                for key, value in {**headers, "Content-Length": len(content)}.items():
                    self.send_header(key, str(value))
                self.end_headers()
                if body:
                    self.wfile.write(content)
                    if status == 200 and "/resolve/" in path:
                        hub.sent.append(path.split("/resolve/")[0][1:] + "/" +
                                        path.split("/", 5)[-1])

        return Handler

    def _files(self, repo, revision):
        """(error answer or None, the repo's files) at `revision`."""
        if repo not in self.repos:
            return (401, {"X-Error-Code": "RepoNotFound"}, b"{}"), None
        if revision not in (None, "main", commit_of(repo)):
            return (404, {"X-Error-Code": "RevisionNotFound"}, b"{}"), None
        return None, self.repos[repo]

    def _info(self, repo, revision=None):
        error, files = self._files(repo, revision)
        return error or (200, {}, json.dumps({
            "id": repo, "sha": commit_of(repo),
            "siblings": [{"rfilename": name} for name in sorted(files)]}).encode())

    def _tree(self, repo, revision):
        error, files = self._files(repo, revision)
        return error or (200, {}, json.dumps([
            {"type": "file", "path": name, "size": len(data),
             "oid": hashlib.sha1(data).hexdigest()} for name, data in sorted(files.items())
        ]).encode())

    def _resolve(self, repo, revision, name):
        error, files = self._files(repo, revision)
        if error or name not in files:
            return error or (404, {"X-Error-Code": "EntryNotFound"}, b"")
        data = files[name]
        return 200, {"X-Repo-Commit": commit_of(repo),
                     "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, data


_REPO = r"(?P<repo>[^/]+/[^/]+)"
_INFO = rf"/api/models/{_REPO}(?:/revision/(?P<revision>[^/]+))?"
_TREE = rf"/api/models/{_REPO}/tree/(?P<revision>[^/]+)(?:/.*)?"
_RESOLVE = rf"/{_REPO}/resolve/(?P<revision>[^/]+)/(?P<name>.+)"


@contextlib.contextmanager
def silent_server():
    """The endpoint of a port that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()
