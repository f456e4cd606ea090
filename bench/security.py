"""What auth, policy and operation limits cost, and what an attack costs before it is refused.

  python -m bench.security [--quick] [--customers 2000] [--timeout 20]

Starts its own estate and two gateways over it (or, as a step of `python -m bench`, uses that run's
estate): OFF has `auth: {mode: none}`, no roles and every limit set out of reach; ON is gateway.yaml
as shipped (JWT auth, the roles' policy, the default limits).

A. Security overhead: the gateway's CPU per request (from /proc, its whole process tree) across the
   same requests sent to OFF and ON in interleaved rounds, OFF and ON alternating which goes first;
   medians of the rounds, and the ratio ON/OFF per round (paired, so drift cancels) and pooled.
B. Attacks refused: each sent once to an idle ON gateway over a raw socket (so a 100 MB body is
   streamed, never held, and the client stops sending as soon as the gateway answers); the gateway's
   CPU and RSS before and after, its peak RSS during (where the kernel lets us reset the peak), the
   status, error code and wall time. An attack not answered within the client timeout is reported
   "not refused" and the gateway is restarted so the next attack is measured on an idle one.

A measurement, not a test: /proc counts CPU in 10 ms ticks, so each round is sized to a few hundred ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import socket
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import cpu_s, rss_mb, table
from bench.suite import Env, environment
from tests.harness import LIVE, Gateway, gateway_config, start_gateway
from tests.queries import CUSTOMER_FULL, FULL_CUSTOMER, POINT_OF_SALE

# The point-of-sale lookup plus the fields the pos role sees masked (emails, phones, account holder).
POS_MASKED = """
query PointOfSaleContact($phone: String!) {
  findCustomers(phone: $phone) {
    id name emails phones
    identities { system id }
    accounts { number holder balance }
    offers(withinDays: 30) { campaignName offerCode sentAt }
    tickets(unresolved: true) { id subject status priority }
  }
}
"""

FULL_FIELDS = FULL_CUSTOMER.strip().removeprefix("fragment Full on Customer {").removesuffix("}").strip()
FULL_FIELDS = " ".join(FULL_FIELDS.split())

OUT_OF_REACH = {"max_body_bytes": 1 << 31, "max_tokens": 10**9, "max_depth": 10**6, "max_aliases": 10**9,
                "max_cost": 10**15, "max_int_arg": 10**15, "request_deadline_s": 3600.0}


def off_config(env: Env) -> dict[str, Any]:
    cfg = gateway_config(env.est)
    cfg["auth"] = {"mode": "none"}
    cfg["roles"] = {}
    cfg["limits"] = dict(OUT_OF_REACH)
    return cfg


def on_config(env: Env) -> dict[str, Any]:
    return gateway_config(env.est)


# ---------------------------------------------------------------------------------------------------
# A. Overhead


@dataclass
class Kind:
    label: str
    query: str
    variables: list[dict[str, Any]]
    role: str
    requests: int
    clients: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def note(self, status: int, body: bytes) -> None:
        self.statuses[status] += 1
        try:
            errors = json.loads(body).get("errors") or []
        except ValueError:
            errors = [{"message": body[:200].decode(errors="replace")}]
        for e in errors:
            self.codes[(e.get("extensions") or {}).get("code", "?")] += 1
            if len(self.samples) < 3:
                self.samples.append(f"{status}: {str(e.get('message'))[:160]}")
        if status != 200 and not errors and len(self.samples) < 3:
            self.samples.append(f"{status}: {body[:160]!r}")


async def _send_all(gw: Gateway, kind: Kind, tally: Tally) -> None:
    headers = {**gw.auth(kind.role), **kind.headers}
    queue = iter(range(kind.requests))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def client() -> None:
            for i in queue:
                payload = {"query": kind.query, "variables": kind.variables[i % len(kind.variables)]}
                async with session.post(gw.url + "/graphql", json=payload, headers=headers) as resp:
                    tally.note(resp.status, await resp.read())

        await asyncio.gather(*(client() for _ in range(kind.clients)))


def _cpu_ms_per_request(gw: Gateway, kind: Kind, tally: Tally) -> float:
    before = cpu_s(gw.proc.pid)
    asyncio.run(_send_all(gw, kind, tally))
    return (cpu_s(gw.proc.pid) - before) * 1000 / kind.requests


def overhead(env: Env, off: Gateway, on: Gateway, rounds: int, warm_n: int, cold_n: int) -> dict[str, Any]:
    phones = [r["phone_home"] for r in env.truth.est.crm[:300]]
    by_phone = [{"phone": p} for p in phones]
    ids = [{"id": g} for g in env.everywhere(10)]
    kinds = [Kind("point of sale, warm, agent", POINT_OF_SALE, by_phone, "agent", warm_n, 4),
             Kind("full view, cold (no-cache), agent", CUSTOMER_FULL, ids, "agent", cold_n, 1, dict(LIVE)),
             Kind("point of sale + contact fields, warm, agent", POS_MASKED, by_phone, "agent", warm_n, 4),
             Kind("point of sale + contact fields, warm, pos (masked)", POS_MASKED, by_phone, "pos", warm_n, 4)]
    tallies = {(k.label, side): Tally() for k in kinds for side in ("off", "on")}
    for gw in (off, on):  # warm both caches and connections on every phone; the cold view's connections too
        for k in kinds:
            asyncio.run(_send_all(gw, Kind(k.label, k.query, k.variables, k.role, len(k.variables), 4, k.headers),
                                  tallies[(k.label, "off" if gw is off else "on")]))
    per_round: dict[str, dict[str, list[float]]] = {k.label: {"off": [], "on": []} for k in kinds}
    for r in range(rounds):
        for k in kinds:
            order = (("off", off), ("on", on)) if r % 2 == 0 else (("on", on), ("off", off))
            for side, gw in order:
                per_round[k.label][side].append(_cpu_ms_per_request(gw, k, tallies[(k.label, side)]))
    rows, data = [], {}
    for k in kinds:
        o, n = per_round[k.label]["off"], per_round[k.label]["on"]
        paired = statistics.median(b / a for a, b in zip(o, n) if a > 0)
        pooled = sum(n) / sum(o)
        problems = {side: {"statuses": dict(tallies[(k.label, side)].statuses),
                           "codes": dict(tallies[(k.label, side)].codes),
                           "samples": tallies[(k.label, side)].samples} for side in ("off", "on")}
        rows.append((k.label, statistics.median(o), statistics.median(n), round(paired, 3), round(pooled, 3),
                     "<= 1.05" if k.role == "agent" else "report"))
        data[k.label] = {"off_ms": o, "on_ms": n, "ratio_paired_median": paired, "ratio_pooled": pooled,
                         "requests_per_round": k.requests, "clients": k.clients, "responses": problems}
    return {"title": f"8. Security overhead: gateway CPU ms per request, OFF (no auth, no policy, limits out of "
                     f"reach) vs ON (gateway.yaml: JWT, policy, default limits); {rounds} interleaved rounds, "
                     f"medians",
            "header": ("request", "off ms CPU", "on ms CPU", "ratio on/off", "pooled ratio", "target"),
            "rows": rows, "data": data}


# ---------------------------------------------------------------------------------------------------
# B. Attacks


@dataclass
class Attack:
    label: str
    size: int  # body bytes (declared or streamed)
    chunks: Any  # attempt number -> an iterator of byte chunks (each attempt's text differs: no cache hit)
    chunked: bool = False  # Transfer-Encoding: chunked, no Content-Length
    headers: dict[str, str] = field(default_factory=dict)


def _ids(start: int, n: int, customers: int) -> list[str]:
    return [f"C-{(start + i) % customers + 1:06d}" for i in range(n)]


def _body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"query": query, "variables": variables or {}}).encode()


def _whole(data: bytes, step: int = 1 << 16) -> Any:
    """Chunks of the body with a comment naming the attempt put before the query (same size each time)."""
    assert data.startswith(b'{"query": "')
    at = len(b'{"query": "')

    def gen(k: int) -> Iterator[bytes]:
        body = data[:at] + b"#%04d\\n" % (k % 10000) + data[at:]
        return (body[i:i + step] for i in range(0, len(body), step))
    return gen


def _mem(label: str, data: bytes) -> Attack:
    return Attack(label, len(data) + len(b"#0000\\n"), _whole(data))


def _padded(total: int) -> Any:
    """A JSON body of exactly `total` bytes: a trivial query and a long string, made as it is sent."""
    head, tail = b'{"query": "{ __typename }", "padding": "', b'"}'
    pad = total - len(head) - len(tail)

    def gen(_k: int) -> Iterator[bytes]:
        yield head
        block = b"x" * (1 << 16)
        left = pad
        while left > 0:
            yield block[:min(left, len(block))]
            left -= len(block)
        yield tail
    return gen


def _under_cap_tokens(cap: int) -> bytes:
    """A query body just under the body cap: one customer, its name asked ~200,000 times (no aliases)."""
    head = '{ customer(id: "C-000001") { '
    n = (cap - 2000 - len(head)) // 5
    body = _body(head + "name " * n + "} }")
    assert len(body) < cap, len(body)
    return body


def attacks(customers: int, cap: int) -> list[Attack]:
    bomb = " ".join(f"a{i}: customers(ids: {json.dumps(_ids(i * 10, 100, customers))}) {{ {FULL_FIELDS} }}"
                    for i in range(200))
    bomb_body = _body("{ " + bomb + " }")
    out = [_mem(f"alias bomb: 200 x customers(100 literal ids) x full view inline ({len(bomb_body) / 1024:.0f} KB)",
                bomb_body)]
    if len(bomb_body) >= cap:  # refused by the body cap: also one the operation limits have to refuse
        small = _body("{ " + " ".join(f"a{i}: customers(ids: {json.dumps(_ids(i * 10, 100, customers))}) "
                                      f"{{ {FULL_FIELDS} }}" for i in range(40)) + " }")
        out.append(_mem(f"alias bomb: 40 x customers(100 ids) x full view ({len(small) / 1024:.0f} KB)", small))
    frag = FULL_CUSTOMER + "query Bomb($ids: [ID!]!) { " + \
        " ".join(f"a{i}: customers(ids: $ids) {{ ...Full }}" for i in range(200)) + " }"
    compact = _body(frag, {"ids": _ids(0, 100, customers)})
    out.append(_mem(f"alias bomb, compact: 200 x customers($ids: 100) {{ ...Full }} ({len(compact) / 1024:.1f} KB)",
                    compact))
    at_limit = _body(FULL_CUSTOMER + "query Wide($ids: [ID!]!) { " +
                     " ".join(f"a{i}: customers(ids: $ids) {{ ...Full }}" for i in range(30)) + " }",
                     {"ids": _ids(0, 100, customers)})
    out.append(_mem(f"cost: 30 aliases x customers($ids: 100) {{ ...Full }} ({len(at_limit) / 1024:.1f} KB)", at_limit))
    names = _body('{ customer(id: "C-000001") { ' + " ".join(f"n{i}: name" for i in range(200_000)) + " } }")
    out.append(_mem(f"200,000 aliased name fields ({len(names) / 1e6:.1f} MB)", names))
    big = 100 * 1000 * 1000
    out.append(Attack("100 MB body, Content-Length", big, _padded(big)))
    out.append(Attack("100 MB body, chunked (no Content-Length)", big, _padded(big), chunked=True))
    tokens = _under_cap_tokens(cap)
    out.append(_mem(f"just under the body cap ({len(tokens) / 1024:.0f} KB), ~{len(tokens) // 5:,} tokens", tokens))
    huge_first = _body('{ customer(id: "C-000001") { orders(first: 2000000000) { number lines { sku } } } }')
    out.append(_mem("orders(first: 2,000,000,000)", huge_first))
    many_ids = _body("query($ids: [ID!]!) { customers(ids: $ids) { id name } }", {"ids": _ids(0, 5000, customers)})
    out.append(_mem("customers(ids: 5,000 ids)", many_ids))
    return out


@dataclass
class Answer:
    status: int | None
    body: bytes
    wall_ms: float
    sent: int
    note: str = ""


def _chunk_framed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    for c in chunks:
        if c:
            yield b"%x\r\n" % len(c) + c + b"\r\n"
    yield b"0\r\n\r\n"


def _read_response(sock: socket.socket, deadline: float) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response (Content-Length or read to close)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        got = sock.recv(1 << 16)
        if not got:
            raise ConnectionError("closed before a response")
        buf += got
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            got = sock.recv(1 << 16)
            if not got:
                break
            rest += got
        out, data = b"", rest
        while data:
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, data = out + data[:size], data[size + 2:]
        return status, out
    length = int(hdrs.get("content-length", "-1"))
    while length < 0 or len(rest) < length:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        got = sock.recv(1 << 16)
        if not got:
            break
        rest += got
    return status, rest


def send(gw: Gateway, attack: Attack, timeout: float, attempt: int = 0) -> Answer:
    """POST the attack's body as it is made; stop sending once the gateway answers or closes."""
    headers = {"host": f"127.0.0.1:{gw.port}", "content-type": "application/json", **gw.auth(), **attack.headers}
    if attack.chunked:
        headers["transfer-encoding"] = "chunked"
    else:
        headers["content-length"] = str(attack.size)
    head = "POST /graphql HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    chunks = _chunk_framed(attack.chunks(attempt)) if attack.chunked else attack.chunks(attempt)
    start = time.monotonic()
    deadline = start + timeout
    sent, note = 0, ""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        sock.setblocking(False)
        pending = b""
        try:
            while True:
                if not pending:
                    pending = next(chunks, b"")
                    if not pending:
                        break
                left = deadline - time.monotonic()
                if left <= 0:
                    return Answer(None, b"", (time.monotonic() - start) * 1000, sent, "timeout while sending")
                readable, writable, _ = select.select([sock], [sock], [], min(left, 1.0))
                if readable:  # an early answer (413) or a close: stop sending
                    note = f"answered after {sent / 1e6:.2f} MB sent"
                    break
                if writable:
                    n = sock.send(pending)
                    sent += n
                    pending = pending[n:]
        except (BrokenPipeError, ConnectionResetError) as exc:
            note = f"{type(exc).__name__} after {sent / 1e6:.2f} MB sent"
        try:
            status, body = _read_response(sock, deadline)
        except (TimeoutError, socket.timeout, BlockingIOError):
            return Answer(None, b"", (time.monotonic() - start) * 1000, sent, "no answer within the timeout")
        except (ConnectionError, OSError) as exc:
            return Answer(None, b"", (time.monotonic() - start) * 1000, sent, f"{type(exc).__name__}: {exc}")
    return Answer(status, body, (time.monotonic() - start) * 1000, sent, note)


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _idle(gw: Gateway, quiet_s: float = 0.3, limit_s: float = 15.0) -> None:
    """Until the gateway has used no CPU for a moment (a refused attack must not be billed the last one)."""
    until = time.monotonic() + limit_s
    last = cpu_s(gw.proc.pid)
    while time.monotonic() < until:
        time.sleep(quiet_s)
        now = cpu_s(gw.proc.pid)
        if now == last:
            return
        last = now


def _code(answer: Answer) -> tuple[str, bool]:
    """The first error code (or a short message) and whether the request was refused."""
    try:
        doc = json.loads(answer.body)
    except ValueError:
        text = answer.body[:60].decode(errors="replace").strip()
        return (text or "-"), bool(answer.status and answer.status >= 400)
    errors = doc.get("errors") or [] if isinstance(doc, dict) else []
    first = errors[0] if errors else {}
    code = (first.get("extensions") or {}).get("code") or str(first.get("message", ""))[:60] or "-"
    data = doc.get("data") if isinstance(doc, dict) else None
    refused = bool(answer.status and answer.status >= 400) or (bool(errors) and not data)
    return code, refused


def attacked(env: Env, on: Gateway, restart: Any, timeout: float, repeats: int) -> tuple[dict[str, Any], Gateway]:
    from server.settings import LimitSettings
    cap = LimitSettings().max_body_bytes
    rows, data = [], {}
    for attack in attacks(env.est.customers, cap):
        _idle(on)
        pid = on.proc.pid
        peak_ok = _reset_peak(pid)
        rss0 = rss_mb(pid)
        cpu, walls, answers = 0.0, [], []
        for k in range(repeats):
            if k:
                _idle(on)
            cpu0 = cpu_s(pid)
            answer = send(on, attack, timeout, k)
            cpu += cpu_s(pid) - cpu0
            walls.append(answer.wall_ms)
            answers.append(answer)
            if answer.status is None:  # not refused in time: once is enough
                break
        cpu_ms = cpu * 1000 / len(answers)
        rss1 = rss_mb(pid)
        peak = _peak_mb(pid) - rss0 if peak_ok else float("nan")
        answer = answers[0]
        code, refused = _code(answer)
        same = all(_code(a) == (code, refused) and a.status == answer.status for a in answers)
        verdict = "refused" if refused else ("NOT REFUSED (timeout)" if answer.status is None else "NOT REFUSED")
        if answer.status is None:
            code = answer.note
        healthy = on.proc.poll() is None
        if healthy and answer.status is not None:
            try:
                on.gql("{ __typename }")
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                healthy = False
                answer.note += f"; after it: {exc!s:.80}"
        rows.append((attack.label, answer.status or "-", code, cpu_ms, rss1 - rss0, peak, statistics.median(walls),
                     verdict if same else verdict + " (varied)"))
        data[attack.label] = {"bytes": attack.size, "status": answer.status, "code": code, "cpu_ms": cpu_ms,
                              "attempts": len(answers), "rss_change_mb": rss1 - rss0, "peak_rss_change_mb": peak,
                              "wall_ms": walls, "sent_mb": [round(a.sent / 1e6, 2) for a in answers],
                              "refused": refused, "same_each_time": same, "note": answer.note,
                              "serving_after": healthy, "body": answer.body[:300].decode(errors="replace")}
        if answer.status is None or not healthy:  # still burning CPU, or gone: measure the next one on a fresh one
            on = restart(on)
    return ({"title": f"9. Attacks against ON, on an idle gateway, each sent {repeats} times (CPU: mean per attempt; "
                      f"RSS: after the last vs before the first; peak: highest during; wall: median). Targets: "
                      f"refused, < 50 ms gateway CPU, RSS within 20 MB",
             "header": ("attack", "status", "code", "CPU ms", "RSS +MB", "peak +MB", "wall ms", "verdict"),
             "rows": rows, "data": data}, on)


# ---------------------------------------------------------------------------------------------------


def run(env: Env, quick: bool = False, timeout: float = 20.0) -> list[dict[str, Any]]:
    rounds, warm_n, cold_n, repeats = (3, 300, 40, 3) if quick else (12, 300, 60, 5)
    work = env.work
    off = start_gateway(off_config(env), work, "security-off")
    on = start_gateway(on_config(env), work, "security-on")
    restarts = [0]

    def restart(gw: Gateway) -> Gateway:
        gw.proc.kill()
        gw.proc.wait(15)
        restarts[0] += 1
        return start_gateway(on_config(env), work, f"security-on-{restarts[0]}")

    try:
        a = overhead(env, off, on, rounds, warm_n, cold_n)
        off.stop()
        b, on = attacked(env, on, restart, timeout, repeats)
        b["data"]["gateway_restarts"] = restarts[0]
    finally:
        for gw in (off, on):
            if gw.proc.poll() is None:
                gw.stop()
    return [a, b]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.security", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 300 warm / 40 cold requests")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=20.0, help="client timeout per attack, s")
    parser.add_argument("--json", type=Path, help="also write the tables here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = environment(Path(tmp), args.customers)
        try:
            tables = run(env, args.quick, args.timeout)
        finally:
            env.est.stop()
    for t in tables:
        print(table(t["title"], t["header"], t["rows"]), flush=True)
    for label, d in tables[0]["data"].items():
        for side, r in d["responses"].items():
            if set(r["statuses"]) != {200} or r["codes"]:
                print(f"note: {label}, {side}: statuses {r['statuses']}, error codes {r['codes']}, e.g. {r['samples']}")
    for label, d in tables[1]["data"].items():
        if isinstance(d, dict) and (d.get("note") or not d.get("serving_after", True)):
            print(f"note: {label}: {d['note']}; serving after: {d['serving_after']}")
    if args.json:
        args.json.write_text(json.dumps(tables, indent=1, default=str))


if __name__ == "__main__":
    main()
