"""Command agent of a QA node (runs as the last step of PID 1 inside the guest).

It talks to the host over the virtio-serial port named ``cardume-qa``, one JSON object per
line each way. Requests: ``{"id": N, "op": "run", "cmd": "...", "timeout": S, "input": "..."}``
runs ``sh -c cmd`` and answers ``{"id": N, "rc": RC, "out": "...", "err": "..."}``;
``{"id": N, "op": "put", "path": "...", "data": BASE64, "mode": 420}`` writes a file.
Each request runs in its own thread, so a slow command does not hold up the others.
"""

import base64
import json
import os
import subprocess
import sys
import threading
from typing import Any

PORT_NAME = "cardume-qa"


def find_port() -> str:
    base = "/sys/class/virtio-ports"
    for entry in sorted(os.listdir(base)):
        try:
            with open(os.path.join(base, entry, "name")) as f:
                if f.read().strip() == PORT_NAME:
                    return "/dev/" + entry
        except OSError:
            continue
    raise SystemExit("cardume-qa agent: no virtio port named " + PORT_NAME)


def handle(req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    if op == "run":
        try:
            proc = subprocess.run(
                ["/bin/sh", "-c", req["cmd"]],
                input=req.get("input", "").encode(),
                capture_output=True,
                timeout=req.get("timeout"),
                close_fds=True,
            )
        except subprocess.TimeoutExpired as exc:
            return {"rc": -9, "out": (exc.stdout or b"").decode(errors="replace"),
                    "err": f"timed out after {req.get('timeout')}s"}
        return {"rc": proc.returncode, "out": proc.stdout.decode(errors="replace"),
                "err": proc.stderr.decode(errors="replace")}
    if op == "put":
        path = req["path"]
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(req["data"]))
        os.chmod(path, req.get("mode", 0o644))
        return {"rc": 0, "out": "", "err": ""}
    return {"rc": 127, "out": "", "err": f"unknown op {op!r}"}


def main() -> None:
    fd = os.open(find_port(), os.O_RDWR)
    reader = os.fdopen(fd, "rb", buffering=0)
    lock = threading.Lock()

    def reply(msg: dict[str, Any]) -> None:
        data = (json.dumps(msg) + "\n").encode()
        with lock:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]

    def worker(req: dict[str, Any]) -> None:
        try:
            msg = handle(req)
        except Exception as exc:  # report, never die
            msg = {"rc": 126, "out": "", "err": f"agent error: {exc!r}"}
        msg["id"] = req.get("id")
        reply(msg)

    reply({"id": None, "ready": True})
    buf = b""
    while True:
        try:
            chunk = reader.read(65536)
        except OSError:
            chunk = b""
        if not chunk:  # host side closed: wait for it to reconnect
            threading.Event().wait(0.1)
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError:
                sys.stderr.write("cardume-qa agent: bad request\n")
                continue
            threading.Thread(target=worker, args=(req,), daemon=True).start()


if __name__ == "__main__":
    main()
