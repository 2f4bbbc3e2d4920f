#!/usr/bin/python3
"""A small Kubernetes API server for tests, written from the Kubernetes API documentation
("API Concepts": efficient detection of changes, resource versions, watch bookmarks,
410 Gone, retrieving large results in chunks; "Discovery"). It is not derived from veer's
client: tests check it against kubectl.

Serves, over http or https (--tls-cert/--tls-key, optional --client-ca to require client
certificates), on 127.0.0.1 and the port given (0 = any free one):
  GET /api, /api/v1, /apis, /apis/G, /apis/G/V           discovery
  GET [/api/v1|/apis/G/V][/namespaces/NS]/RESOURCE[/NAME] list / get
      ?resourceVersion=&resourceVersionMatch=&limit=&continue=&fieldSelector=&labelSelector=
  GET ...?watch=1&resourceVersion=&allowWatchBookmarks=&timeoutSeconds=
      newline-delimited JSON events over chunked transfer encoding
Authentication: with --token T (or a rotated token) only "Authorization: Bearer T" passes;
anything else is 401 with a Status body.

Control: one JSON object per line on stdin, one JSON reply per line on stdout. The first
line on stdout is {"port": N}. Ops:
  {"op":"apply","object":{...}}        create or replace (by apiVersion/kind/ns/name)
  {"op":"delete","apiVersion":..,"kind":..,"namespace":..,"name":..}
  {"op":"install","group":G,"version":V,"resource":R,"kind":K,"namespaced":true}  a CRD
  {"op":"uninstall","group":G,"version":V,"resource":R}
  {"op":"cut"}                          drop every open watch mid-stream (no last chunk)
  {"op":"compact"}                      forget history: older resourceVersions get 410
  {"op":"restart","rv":N}               new resourceVersions from N, history gone, watches cut
  {"op":"down"} / {"op":"up"}           stop / resume listening on the same port
  {"op":"token","token":T}              rotate: only T is accepted from now on
  {"op":"throttle","count":N,"retryAfter":S}  the next N API requests get 429 + Retry-After
  {"op":"gone-as-status","value":true}  a watch from a compacted version gets HTTP 410
                                        instead of a 200 stream with an ERROR event
  {"op":"bookmark"}                     send a BOOKMARK on every open watch now
  {"op":"stats"}                        request counts, open watches, the last requests
Every reply carries "rv": the current resourceVersion.
"""

import argparse
import base64
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CORE = {
    # resource -> (kind, namespaced)
    ("", "v1"): {"pods": ("Pod", True), "services": ("Service", True),
                 "namespaces": ("Namespace", False), "secrets": ("Secret", True)},
    ("discovery.k8s.io", "v1"): {"endpointslices": ("EndpointSlice", True)},
}


class State:
    def __init__(self, token):
        self.lock = threading.Condition()
        self.rv = 1
        self.compacted = 0          # watches/continues from below this are 410
        self.history = []           # (rv, type, key, obj) after `compacted`
        self.objects = {}           # (group, resource, ns, name) -> obj
        self.resources = {gv: dict(r) for gv, r in CORE.items()}
        self.tokens = {token} if token else None
        self.throttle = 0
        self.retry_after = 1
        self.gone_as_status = False
        self.watches = set()        # open watch handlers
        self.epoch = 0              # bumps on cut/restart
        self.bookmark_epoch = 0
        self.stats = {}
        self.requests = []          # the last API requests: (verb, path, query), for tests

    def note(self, verb, path, query):
        self.requests = (self.requests + [[verb, path, query]])[-200:]

    def count(self, what):
        self.stats[what] = self.stats.get(what, 0) + 1

    def find_resource(self, group, kind):
        for (g, v), res in self.resources.items():
            if g != group:
                continue
            for r, (k, namespaced) in res.items():
                if k == kind:
                    return v, r, namespaced
        return None


def api_version(group, version):
    return f"{group}/{version}" if group else version


def status(code, reason, message, causes=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if causes:
        body["details"] = {"causes": causes}
    return body


def field_value(obj, path):
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ""
        cur = cur[part]
    return cur if isinstance(cur, str) else json.dumps(cur)


def parse_selector(text):
    """field or label selector: comma-separated key=value, key==value, key!=value."""
    terms = []
    for term in filter(None, (t.strip() for t in (text or "").split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            terms.append((k.strip(), v.strip(), False))
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            terms.append((k.strip(), v.strip(), True))
        else:
            raise ValueError(f"unsupported selector term {term!r}")
    return terms


def matches(obj, fields, labels):
    for k, v, eq in fields:
        if (field_value(obj, k) == v) != eq:
            return False
    obj_labels = obj.get("metadata", {}).get("labels") or {}
    for k, v, eq in labels:
        if (obj_labels.get(k) == v) != eq:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None  # set by main

    def log_message(self, fmt, *args):  # quiet: tests read stdout
        pass

    def send_json(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        st = self.state
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        with st.lock:
            if st.tokens is not None:
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in st.tokens:
                    st.count("401")
                    return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            if st.throttle > 0:
                st.throttle -= 1
                st.count("429")
                return self.send_json(429, status(429, "TooManyRequests", "slow down"),
                                      {"Retry-After": str(st.retry_after)})
        parts = [p for p in url.path.split("/") if p]
        try:
            if parts == ["api"]:
                return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                            "serverAddressByClientCIDRs": []})
            if parts == ["apis"]:
                return self.send_json(200, self.group_list())
            if parts == ["version"]:
                return self.send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"})
            if parts[:1] == ["api"] and len(parts) >= 2:
                group, version, rest = "", parts[1], parts[2:]
            elif parts[:1] == ["apis"] and len(parts) == 2:
                g = self.group_list(parts[1])
                return self.send_json(200, g) if g else self.send_json(
                    404, status(404, "NotFound", "the server could not find the requested resource"))
            elif parts[:1] == ["apis"] and len(parts) >= 3:
                group, version, rest = parts[1], parts[2], parts[3:]
            else:
                return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            with st.lock:
                res = st.resources.get((group, version))
            if res is None:
                return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            if not rest:
                return self.send_json(200, self.resource_list(group, version, res))
            ns = None
            if rest[0] == "namespaces" and len(rest) >= 3:
                ns, rest = rest[1], rest[2:]
            if rest[0] not in res or len(rest) > 2:
                return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
            kind, namespaced = res[rest[0]]
            if len(rest) == 2:
                return self.get_one(group, rest[0], ns, rest[1])
            fields = parse_selector(q.get("fieldSelector"))
            labels = parse_selector(q.get("labelSelector"))
            if q.get("watch") in ("1", "true"):
                return self.watch(group, version, rest[0], kind, ns, fields, labels, q)
            return self.list(group, version, rest[0], kind, ns, fields, labels, q)
        except ValueError as e:
            return self.send_json(400, status(400, "BadRequest", str(e)))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    def group_list(self, only=None):
        st = self.state
        groups = {}
        with st.lock:
            for (g, v) in st.resources:
                if g:
                    groups.setdefault(g, []).append(v)
        out = []
        for g, versions in sorted(groups.items()):
            vs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
            entry = {"name": g, "versions": vs, "preferredVersion": vs[0]}
            if only == g:
                return dict(entry, kind="APIGroup", apiVersion="v1")
            out.append(entry)
        return None if only else {"kind": "APIGroupList", "apiVersion": "v1", "groups": out}

    def resource_list(self, group, version, res):
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": api_version(group, version),
                "resources": [{"name": r, "singularName": k.lower(), "namespaced": n, "kind": k,
                               "verbs": ["get", "list", "watch"]} for r, (k, n) in res.items()]}

    def get_one(self, group, resource, ns, name):
        with self.state.lock:
            obj = self.state.objects.get((group, resource, ns or "", name))
        if obj is None:
            return self.send_json(404, status(404, "NotFound", f'{resource} "{name}" not found'))
        return self.send_json(200, obj)

    def selected(self, group, resource, ns, fields, labels):
        out = []
        for (g, r, ons, _), obj in self.state.objects.items():
            if g == group and r == resource and (ns is None or ons == ns) and matches(obj, fields, labels):
                out.append(obj)
        out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return out

    def list(self, group, version, resource, kind, ns, fields, labels, q):
        st = self.state
        rv = q.get("resourceVersion", "")
        limit = int(q.get("limit") or 0)
        cont = q.get("continue", "")
        with st.lock:
            st.count("list")
            st.note("list", self.path.split("?")[0], q)
            if rv not in ("", "0") and int(rv) > st.rv:
                return self.send_json(504, status(504, "Timeout", "Too large resource version",
                                                  [{"reason": "ResourceVersionTooLarge",
                                                    "message": "Too large resource version"}]))
            items = self.selected(group, resource, ns, fields, labels)
            list_rv = st.rv
            start = 0
            if cont:
                try:
                    token = json.loads(base64.b64decode(cont))
                    list_rv, start = int(token["rv"]), int(token["start"])
                except Exception:
                    return self.send_json(400, status(400, "BadRequest", "invalid continue token"))
                if list_rv < st.compacted:
                    st.count("410")
                    return self.send_json(410, status(410, "Expired",
                                                      "The provided continue parameter is too old"))
                if list_rv != st.rv:
                    # The documented contract is a consistent snapshot at list_rv; this server
                    # keeps no snapshots, so the tests only change objects between lists.
                    pass
            # resourceVersion=0 ("any") is served as a whole: the documentation lets a server
            # ignore limit there, as the watch cache does.
            page = items[start:] if (rv == "0" or limit <= 0) else items[start:start + limit]
            meta = {"resourceVersion": str(list_rv)}
            if rv != "0" and limit > 0 and start + limit < len(items):
                meta["continue"] = base64.b64encode(
                    json.dumps({"rv": list_rv, "start": start + limit}).encode()).decode()
                meta["remainingItemCount"] = len(items) - start - limit
            body = {"kind": kind + "List", "apiVersion": api_version(group, version),
                    "metadata": meta,
                    "items": [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                              for o in page]}
        self.send_json(200, body)

    def chunk(self, obj):
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, group, version, resource, kind, ns, fields, labels, q):
        st = self.state
        rv = q.get("resourceVersion", "")
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        timeout = float(q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        av = api_version(group, version)
        with st.lock:
            st.count("watch")
            st.note("watch", self.path.split("?")[0], q)
            if rv not in ("", "0") and int(rv) > st.rv:
                return self.send_json(504, status(504, "Timeout", "Too large resource version",
                                                  [{"reason": "ResourceVersionTooLarge",
                                                    "message": "Too large resource version"}]))
            gone = rv not in ("", "0") and int(rv) < st.compacted
            if gone and st.gone_as_status:
                st.count("410")
                return self.send_json(410, status(410, "Expired", f"too old resource version: {rv} ({st.compacted})"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if gone:
                st.count("410")
                self.chunk({"type": "ERROR", "object": status(
                    410, "Expired", f"too old resource version: {rv} ({st.compacted})")})
                self.wfile.write(b"0\r\n\r\n")
                return
            pending = []
            if rv in ("", "0"):
                # "Start at most recent" / "any": synthetic ADDED for the current state.
                pending = [("ADDED", dict(o, kind=kind, apiVersion=av))
                           for o in self.selected(group, resource, ns, fields, labels)]
                pos = st.rv
            else:
                pos = int(rv)
            epoch, bm_epoch = st.epoch, st.bookmark_epoch
            st.watches.add(self)
        try:
            for ev in pending:
                self.chunk({"type": ev[0], "object": ev[1]})
            while True:
                with st.lock:
                    while True:
                        if st.epoch != epoch:
                            # Cut: close the socket without the last chunk, as a dropped
                            # connection or a dying server would.
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        events = [h for h in st.history if h[0] > pos and h[2][0] == group
                                  and h[2][1] == resource and (ns is None or h[2][2] == ns)]
                        left = deadline - time.monotonic()
                        if events or left <= 0 or st.bookmark_epoch != bm_epoch:
                            break
                        st.lock.wait(min(left, 1.0))
                    send = []
                    for erv, etype, _, obj, old in events:
                        pos = erv
                        now_in = obj is not None and matches(obj, fields, labels)
                        was_in = old is not None and matches(old, fields, labels)
                        if etype == "DELETED":
                            if was_in:
                                send.append(("DELETED", old))
                        elif now_in and was_in:
                            send.append(("MODIFIED", obj))
                        elif now_in:
                            send.append(("ADDED", obj))
                        elif was_in:
                            # Left the selector: to this watcher it is gone.
                            send.append(("DELETED", dict(obj)))
                    bookmark = bookmarks and st.bookmark_epoch != bm_epoch
                    bm_epoch = st.bookmark_epoch
                    if bookmark:
                        pos = max(pos, st.rv)
                    current = pos
                for etype, obj in send:
                    self.chunk({"type": etype, "object": dict(obj, kind=kind, apiVersion=av)})
                if bookmark:
                    self.chunk({"type": "BOOKMARK", "object": {
                        "kind": kind, "apiVersion": av, "metadata": {"resourceVersion": str(current)}}})
                if deadline - time.monotonic() <= 0:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    return
        finally:
            with st.lock:
                st.watches.discard(self)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ssl_ctx):
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request's thread, so one slow client cannot stall accept.
        if self.ssl_ctx is not None:
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca")
    ap.add_argument("--down", action="store_true", help="start not listening (port still reported)")
    args = ap.parse_args()

    st = State(args.token)
    Handler.state = st
    ssl_ctx = None
    if args.tls_cert:
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ssl_ctx.load_verify_locations(args.client_ca)
            ssl_ctx.verify_mode = ssl.CERT_REQUIRED

    server_box = {}
    port = args.port

    def up():
        nonlocal port
        srv = Server(("127.0.0.1", port), ssl_ctx)
        port = srv.server_address[1]
        t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        t.start()
        server_box["srv"] = srv

    def down():
        srv = server_box.pop("srv", None)
        if srv is not None:
            srv.shutdown()
            srv.server_close()
        with st.lock:
            st.epoch += 1  # open connections die with the server
            st.lock.notify_all()

    up()
    if args.down:
        down()
    print(json.dumps({"port": port}), flush=True)

    def record(etype, key, obj, old):
        st.rv += 1
        if obj is not None:
            obj["metadata"]["resourceVersion"] = str(st.rv)
        st.history.append((st.rv, etype, key, obj, old))
        st.lock.notify_all()

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            op = cmd["op"]
            reply = {"ok": True}
            if op in ("down", "up"):
                (down if op == "down" else up)()
            with st.lock:
                if op == "apply":
                    obj = cmd["object"]
                    group, _, version = obj["apiVersion"].rpartition("/")
                    found = st.find_resource(group, obj["kind"])
                    if found is None:
                        raise ValueError(f"no resource for {obj['apiVersion']} {obj['kind']}")
                    _, resource, namespaced = found
                    md = obj.setdefault("metadata", {})
                    if namespaced:
                        md.setdefault("namespace", "default")
                    key = (group, resource, md.get("namespace", ""), md["name"])
                    old = st.objects.get(key)
                    md.setdefault("uid", old["metadata"]["uid"] if old else f"uid-{st.rv + 1}")
                    st.objects[key] = obj
                    record("MODIFIED" if old else "ADDED", key, obj, old)
                elif op == "delete":
                    group, _, _ = cmd["apiVersion"].rpartition("/")
                    found = st.find_resource(group, cmd["kind"])
                    key = (group, found[1], cmd.get("namespace", "default") if found[2] else "", cmd["name"])
                    old = st.objects.pop(key)
                    gone = json.loads(json.dumps(old))
                    record("DELETED", key, None, gone)
                    gone["metadata"]["resourceVersion"] = str(st.rv)
                elif op == "install":
                    st.resources.setdefault((cmd["group"], cmd["version"]), {})[cmd["resource"]] = (
                        cmd["kind"], cmd.get("namespaced", True))
                elif op == "uninstall":
                    gv = (cmd["group"], cmd["version"])
                    st.resources.get(gv, {}).pop(cmd["resource"], None)
                    if not st.resources.get(gv):
                        st.resources.pop(gv, None)
                elif op == "cut":
                    st.epoch += 1
                    st.lock.notify_all()
                elif op == "compact":
                    st.compacted = st.rv
                    st.history = []
                elif op == "restart":
                    st.rv = int(cmd["rv"])
                    st.compacted = st.rv
                    st.history = []
                    for obj in st.objects.values():
                        obj["metadata"]["resourceVersion"] = str(st.rv)
                    st.epoch += 1
                    st.lock.notify_all()
                elif op == "token":
                    st.tokens = {cmd["token"]}
                elif op == "throttle":
                    st.throttle = int(cmd["count"])
                    st.retry_after = int(cmd.get("retryAfter", 1))
                elif op == "gone-as-status":
                    st.gone_as_status = bool(cmd["value"])
                elif op == "bookmark":
                    st.bookmark_epoch += 1
                    st.lock.notify_all()
                elif op == "stats":
                    reply["stats"] = dict(st.stats)
                    reply["watches"] = len(st.watches)
                    reply["requests"] = st.requests
                elif op not in ("down", "up"):
                    raise ValueError(f"unknown op {op!r}")
                reply["rv"] = str(st.rv)
        except Exception as e:  # a test's mistake: say so, keep serving
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)
    down()


if __name__ == "__main__":
    main()
