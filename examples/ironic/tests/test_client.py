"""BrokerClient's retry, timeout, error and token rules, against a stub.

A scripted in-process HTTP server stands in for the broker here so that
failures the real broker cannot be made to produce on demand (a 503
lock_timeout, a hung batch, a proxy's HTML error page) can be tested.
"""

import http.server
import json
import os
import socket
import threading
import time

import pytest

from ironic_hostsdir_broker import client as broker_client


class Stub(object):
    """Answers each request with the next scripted reply for its path."""

    def __init__(self):
        self.requests = []
        self.replies = {}
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else b''
                path = self.path.split('?')[0]
                stub.requests.append((self.command, self.path,
                                      dict(self.headers), body))
                queue = stub.replies.get(path) or [(200, {'results': []})]
                reply = queue.pop(0) if len(queue) > 1 else queue[0]
                if reply == 'hang':
                    time.sleep(3)
                    return
                status, payload = reply
                data = payload if isinstance(payload, bytes) else \
                    json.dumps(payload).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.url = 'http://127.0.0.1:%d' % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def error(status, code, message, field=None):
    return (status, {'error': {'code': code, 'message': message,
                               'field': field}})


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.close()


def make(url, **kw):
    kw.setdefault('timeout', 0.5)
    kw.setdefault('retries', 2)
    return broker_client.BrokerClient(url, **kw)


def test_503_lock_timeout_is_retried_even_for_a_conditional_batch(stub):
    stub.replies['/v1/batch'] = [
        error(503, 'lock_timeout', 'the store cannot be written now'),
        (200, {'results': []})]
    assert make(stub.url).batch([], idempotent=False) == []
    assert len(stub.requests) == 2


def test_503_gives_up_after_retries(stub):
    stub.replies['/v1/batch'] = [
        error(503, 'lock_timeout', 'the store cannot be written now')]
    with pytest.raises(broker_client.BrokerError) as info:
        make(stub.url, retries=2).batch([], idempotent=True)
    assert len(stub.requests) == 3
    assert info.value.status == 503
    assert 'lock_timeout' in str(info.value)
    assert 'the store cannot be written now' in str(info.value)


def test_reload_failed_503_is_not_retried_for_a_conditional_batch(stub):
    stub.replies['/v1/batch'] = [error(503, 'reload_failed', 'dnsmasq died')]
    with pytest.raises(broker_client.BrokerError):
        make(stub.url).batch([], idempotent=False)
    assert len(stub.requests) == 1


@pytest.mark.parametrize('code', ['store_stalled', 'store_failed',
                                  'shutting_down', 'store_unavailable'])
def test_503_that_wrote_nothing_is_retried_even_when_conditional(stub, code):
    stub.replies['/v1/batch'] = [error(503, code, 'nothing was written'),
                                 (200, {'results': []})]
    assert make(stub.url).batch([], idempotent=False) == []
    assert len(stub.requests) == 2


def test_outcome_unknown_is_retried_only_when_idempotent(stub):
    stub.replies['/v1/batch'] = [
        error(500, 'outcome_unknown', 'the change may be in place'),
        (200, {'results': []})]
    assert make(stub.url).batch([], idempotent=True) == []
    assert len(stub.requests) == 2
    stub.requests.clear()
    stub.replies['/v1/batch'] = [
        error(500, 'outcome_unknown', 'the change may be in place'),
        (200, {'results': []})]
    with pytest.raises(broker_client.BrokerError) as info:
        make(stub.url).batch([], idempotent=False)
    assert len(stub.requests) == 1
    assert info.value.code == 'outcome_unknown'


def test_no_space_is_not_retried(stub):
    stub.replies['/v1/batch'] = [error(507, 'no_space', 'the disk is full'),
                                 (200, {'results': []})]
    with pytest.raises(broker_client.BrokerError) as info:
        make(stub.url).batch([], idempotent=True)
    assert len(stub.requests) == 1
    assert info.value.status == 507


def test_client_errors_are_not_retried_and_carry_the_message(stub):
    stub.replies['/v1/batch'] = [error(
        409, 'conflict', 'MAC 52:54:00:aa:bb:cc already belongs to `x`',
        'ops[1].spec.macs[0]')]
    with pytest.raises(broker_client.BrokerError) as info:
        make(stub.url).batch([], idempotent=True)
    assert len(stub.requests) == 1
    err = info.value
    assert (err.status, err.code) == (409, 'conflict')
    assert err.field == 'ops[1].spec.macs[0]'
    text = str(err)
    assert stub.url in text and 'POST /v1/batch' in text
    assert 'MAC 52:54:00:aa:bb:cc already belongs to `x`' in text
    assert '(field ops[1].spec.macs[0])' in text


def test_hung_conditional_batch_is_not_retried(stub):
    stub.replies['/v1/batch'] = ['hang']
    start = time.monotonic()
    with pytest.raises(broker_client.BrokerError) as info:
        make(stub.url, timeout=0.3).batch([], idempotent=False)
    assert info.value.code == 'timeout'
    assert len(stub.requests) == 1
    assert time.monotonic() - start < 2


def test_hung_read_is_retried(stub):
    stub.replies['/v1/leases'] = ['hang', (200, {'items': []})]
    assert make(stub.url, timeout=0.3).leases('52:54:00:aa:bb:cc') == []
    assert len(stub.requests) == 2
    assert stub.requests[0][1] == '/v1/leases?mac=52%3A54%3A00%3Aaa%3Abb%3Acc'


def test_refused_connection_is_retried_and_bounded():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    start = time.monotonic()
    with pytest.raises(broker_client.BrokerError) as info:
        make('http://127.0.0.1:%d' % port, retries=2).batch(
            [], idempotent=False)
    assert info.value.code == 'unreachable'
    assert info.value.status is None
    # back-off 0.25 + 0.5 s between the three attempts
    assert 0.7 < time.monotonic() - start < 3


def test_proxy_error_page_is_readable(stub):
    stub.replies['/v1/batch'] = [(502, b'<html>Bad Gateway</html>')]
    with pytest.raises(broker_client.BrokerError) as info:
        make(stub.url).batch([], idempotent=False)
    assert len(stub.requests) == 1
    assert '502' in str(info.value) and 'Bad Gateway' in str(info.value)


def test_absent_option_is_none_and_other_404s_are_errors(stub):
    stub.replies['/v1/options/ironic-x.conf'] = [
        error(404, 'not_found', 'no option entry `ironic-x.conf`')]
    assert make(stub.url).get_option('ironic-x.conf') is None
    stub.replies['/v1/options/ironic-y.conf'] = [(404, b'not here')]
    with pytest.raises(broker_client.BrokerError):
        make(stub.url).get_option('ironic-y.conf')


def test_write_token_sent_and_reread_on_change(stub, tmp_path):
    path = tmp_path / 'tokens'
    path.write_text('# comment\nread rrr\nwrite www1  # trailing comment\n')
    c = make(stub.url, token_file=str(path))
    c.batch([], idempotent=True)
    headers = stub.requests[-1][2]
    assert headers['Authorization'] == 'Bearer www1'
    assert headers['Content-Type'] == 'application/json'
    assert json.loads(stub.requests[-1][3]) == {'ops': []}
    path.write_text('write www2-rotated\n')
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)
    c.batch([], idempotent=True)
    assert stub.requests[-1][2]['Authorization'] == 'Bearer www2-rotated'


def test_no_token_file_sends_no_authorization(stub):
    make(stub.url).batch([], idempotent=True)
    assert 'Authorization' not in stub.requests[-1][2]


def test_bad_url_is_a_config_error():
    with pytest.raises(broker_client.BrokerError) as info:
        broker_client.BrokerClient('127.0.0.1:8787')
    assert info.value.code == 'config'
