"""load_text 的下载路径：用本机 127.0.0.1 上的真实 HTTP 服务器测试，不访问外网。

服务器发送真实语料的字节（校验和必须对得上），语料来自 conftest.py 中的 corpus_file 夹具，
找不到语料时跳过。
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest

from s4lab import data
from s4lab.data import CACHE_FILE_NAME, SHA256, DataError, load_text

@pytest.fixture(scope="module")
def corpus_bytes(corpus_file) -> bytes:
    raw = corpus_file.read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SHA256
    return raw


class CorpusServer:
    """在后台线程里运行的 HTTP 服务器，按路径返回预先设定的响应，并记录收到的请求。

    ``routes`` 的值是 ``(状态码, 响应体, Content-Length)``；Content-Length 为 None 时按响应体长度发送，
    设得比响应体大就模拟传输中途断开。
    """

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                status, body, length = server.routes.get(self.path, (404, b"not found", None))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format, *args):
                pass  # 不把访问日志打到测试输出里

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.running = False

    def url(self, path: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def start(self):
        self.thread.start()
        self.running = True

    def stop(self):
        if self.running:
            self.httpd.shutdown()
            self.running = False
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = CorpusServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.delenv(data.DATA_URL_ENV, raising=False)
    monkeypatch.delenv(data.CACHE_DIR_ENV, raising=False)


def closed_port_url() -> str:
    """绑定一个空闲端口后立即关闭，返回指向它的 URL。

    端口关闭后通常不会马上被别的进程占用，所以连接会被拒绝。
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/input.txt"


def test_download_caches_then_uses_cache(server, corpus_bytes, tmp_path):
    server.routes["/input.txt"] = (200, corpus_bytes, None)
    url = server.url("/input.txt")

    text = load_text(url=url, cache_dir=tmp_path, timeout=10.0)
    assert text == corpus_bytes.decode("utf-8")
    assert server.requests == ["/input.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [CACHE_FILE_NAME]
    assert (tmp_path / CACHE_FILE_NAME).read_bytes() == corpus_bytes

    server.stop()
    assert load_text(url=url, cache_dir=tmp_path, timeout=10.0) == text
    assert server.requests == ["/input.txt"]


def test_download_url_from_env(server, corpus_bytes, tmp_path, monkeypatch):
    server.routes["/mirror.txt"] = (200, corpus_bytes, None)
    monkeypatch.setenv(data.DATA_URL_ENV, server.url("/mirror.txt"))
    cache_dir = tmp_path / "new" / "cache"  # 还不存在的目录会被创建
    assert load_text(cache_dir=cache_dir, timeout=10.0) == corpus_bytes.decode("utf-8")
    assert server.requests == ["/mirror.txt"]
    assert (cache_dir / CACHE_FILE_NAME).is_file()


def test_download_corrupted_writes_nothing(server, corpus_bytes, tmp_path):
    corrupted = bytearray(corpus_bytes)
    corrupted[500_000] = ord("#") if corrupted[500_000] != ord("#") else ord("@")
    server.routes["/input.txt"] = (200, bytes(corrupted), None)
    url = server.url("/input.txt")

    with pytest.raises(DataError) as info:
        load_text(url=url, cache_dir=tmp_path, timeout=10.0)
    message = str(info.value)
    assert "sha256" in message
    assert "校验和" in message
    assert url in message
    assert hashlib.sha256(bytes(corrupted)).hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_download_other_text_not_cached(server, tmp_path):
    server.routes["/other.txt"] = (200, "To be, or not to be\n".encode("utf-8"), None)
    url = server.url("/other.txt")
    assert load_text(url=url, cache_dir=tmp_path, verify=False, timeout=10.0) == "To be, or not to be\n"
    assert list(tmp_path.iterdir()) == []


def test_download_no_server_names_url(tmp_path):
    url = closed_port_url()
    with pytest.raises(DataError) as info:
        load_text(url=url, cache_dir=tmp_path, timeout=10.0)
    message = str(info.value)
    assert url in message
    assert str(tmp_path / CACHE_FILE_NAME) in message
    assert data.DATA_ENV in message
    assert "path" in message
    assert list(tmp_path.iterdir()) == []


def test_download_http_error_names_status(server, tmp_path):
    url = server.url("/missing.txt")
    with pytest.raises(DataError) as info:
        load_text(url=url, cache_dir=tmp_path, timeout=10.0)
    message = str(info.value)
    assert "HTTP 404" in message
    assert url in message
    assert list(tmp_path.iterdir()) == []


def test_download_truncated_rejected(server, corpus_bytes, tmp_path):
    # 服务器声明了完整长度，却只发送一半就关闭连接。即使 verify=False，也必须发现数据不完整。
    half = corpus_bytes[: len(corpus_bytes) // 2]
    server.routes["/input.txt"] = (200, half, len(corpus_bytes))
    url = server.url("/input.txt")
    with pytest.raises(DataError, match="传输中断") as info:
        load_text(url=url, cache_dir=tmp_path, verify=False, timeout=10.0)
    assert url in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_rejects_non_http_url(tmp_path, corpus_bytes):
    local = tmp_path / "input.txt"
    local.write_bytes(corpus_bytes)
    cache_dir = tmp_path / "cache"
    with pytest.raises(DataError, match="http"):
        load_text(url=local.as_uri(), cache_dir=cache_dir)
    assert not cache_dir.exists()
