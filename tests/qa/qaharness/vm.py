"""Boot QA nodes as QEMU (TCG) virtual machines and run commands in them.

Each node gets the shared root image (``snapshot=on``: its writes are thrown away), a sparse
data disk of its own (``/dev/qa-data`` in the guest, for the volume group), a small ext4
"state" disk (mounted at ``/var/lib/cardume`` by the guest init, so cardume's certificates
and configuration survive a power cut), a NIC on a private Ethernet segment and a
virtio-serial port to the command agent. Both disks are created when missing only:
``Node.kill()`` pulls a node's power cord and ``Node.restart()`` boots it again with the
same disks, MAC, IP and sockets. The segment is made of UDP sockets on 127.0.0.1: two nodes
send their frames straight to each other, three or more go through ``hub.py``; either way no
traffic leaves host loopback, and no side has to listen before the other connects (nor
again after a restart). Guests use 192.168.77.0/24 among themselves.

Processes are started by this module and stopped by their PID only.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .images import Images

SUBNET = "192.168.77"
QEMU = "qemu-system-x86_64"


class AgentError(RuntimeError):
    pass


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


def free_udp_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def stop_pid(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Node:
    name: str
    index: int
    workdir: Path
    images: Images
    netdev: str
    memory_mb: int = 512
    disk_mb: int = 4096
    state_mb: int = 64
    proc: subprocess.Popen[bytes] | None = None
    boot_seconds: float = 0.0
    _sock: socket.socket | None = None
    _replies: dict[int, dict[str, object]] = field(default_factory=dict)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _next_id: int = 0
    _ready: bool = False
    boots: int = 0
    _gen: int = 0  # connections made so far: a request dies with its connection

    @property
    def ip(self) -> str:
        return f"{SUBNET}.{10 + self.index}"

    @property
    def mac(self) -> str:
        return f"52:54:00:77:00:{10 + self.index:02x}"

    @property
    def agent_path(self) -> Path:
        return self.workdir / f"{self.name}.agent"

    @property
    def console_path(self) -> Path:
        return self.workdir / f"{self.name}.console"

    @property
    def data_disk(self) -> Path:
        return self.workdir / f"{self.name}.disk"

    @property
    def state_disk(self) -> Path:
        return self.workdir / f"{self.name}.state"

    def make_disks(self) -> None:
        """The data disk (sparse, empty) and the state disk (ext4), unless they exist."""
        if not self.data_disk.exists():
            with self.data_disk.open("wb") as f:
                f.truncate(self.disk_mb << 20)
        if not self.state_disk.exists():
            tmp = self.state_disk.with_suffix(".tmp")
            subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "qastate", str(tmp),
                            f"{self.state_mb}M"], check=True, capture_output=True)
            tmp.rename(self.state_disk)

    def command(self) -> list[str]:
        self.make_disks()
        disk = self.data_disk
        append = (f"console=ttyS0 loglevel=4 panic=-1 net.ifnames=0 "
                  f"qa.host={self.name} qa.ip={self.ip}")
        return [
            QEMU, "-name", self.name, "-accel", "tcg,tb-size=256", "-machine", "pc",
            "-cpu", "max", "-smp", "1", "-m", str(self.memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-serial", f"file:{self.console_path}",
            "-kernel", str(self.images.kernel), "-initrd", str(self.images.initramfs),
            "-append", append,
            "-drive", f"if=none,id=root,file={self.images.rootfs},format=raw,snapshot=on,"
                      "cache=unsafe",
            "-device", "virtio-blk-pci,drive=root,serial=qaroot",
            "-drive", f"if=none,id=data,file={disk},format=raw,cache=unsafe,aio=threads",
            "-device", "virtio-blk-pci,drive=data,serial=qadata",
            "-drive", f"if=none,id=state,file={self.state_disk},format=raw,cache=unsafe",
            "-device", "virtio-blk-pci,drive=state,serial=qastate",
            "-netdev", f"socket,id=net0,{self.netdev}",
            "-device", f"virtio-net-pci,netdev=net0,mac={self.mac}",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=agent,path={self.agent_path},server=on,wait=off",
            "-device", "virtserialport,chardev=agent,name=cardume-qa",
        ]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.boots and self.console_path.exists():  # keep the previous boot's output
            shutil.move(self.console_path, f"{self.console_path}.{self.boots}")
        log = (self.workdir / f"{self.name}.qemu.log").open("ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        self.boots += 1

    def _disconnect(self) -> None:
        """Forget the agent connection (its reader thread stops on its own)."""
        with self._cond:
            sock, self._sock = self._sock, None
            self._gen += 1
            self._replies[-1] = {"closed": True}  # wakes up requests still waiting
            self._cond.notify_all()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def kill(self) -> None:
        """Pull the power cord: SIGKILL the node's qemu (nothing reaches its disks after)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._disconnect()

    def restart(self, timeout: float = 180.0) -> float:
        """Boot the node again (after ``kill``) with the same disks, MAC, IP and network
        sockets; returns the seconds until its agent answered."""
        self.kill()
        with self._cond:
            self._replies = {}
            self._ready = False
        self.start()
        self.boot_seconds = self.wait_ready(timeout)
        return self.boot_seconds

    def _connect(self, deadline: float) -> None:
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AgentError(f"{self.name}: qemu exited ({self.proc.returncode}): "
                                 + self.diagnostics())
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(self.agent_path))
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise AgentError(f"{self.name}: no agent socket") from None
                time.sleep(0.05)
        with self._cond:
            self._sock = s
        threading.Thread(target=self._reader, args=(s,), daemon=True).start()

    def _reader(self, sock: socket.socket) -> None:
        buf = b""
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    if self._sock is sock:  # closed from the guest's side
                        self._replies[-1] = {"closed": True}
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                with self._cond:
                    if self._sock is not sock:
                        return
                    if msg.get("ready"):
                        self._ready = True
                    elif isinstance(msg.get("id"), int):
                        self._replies[msg["id"]] = msg
                    self._cond.notify_all()

    def _send(self, req: dict[str, object]) -> int:
        if self._sock is None:
            raise AgentError(f"{self.name}: not connected (killed?)")
        with self._cond:
            self._next_id += 1
            req["id"] = ident = self._next_id
        self._sock.sendall((json.dumps(req) + "\n").encode())
        return ident

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Wait until the guest's agent answers; returns the seconds since start."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        self._connect(deadline)
        with self._cond:
            while not self._ready:
                if -1 in self._replies or (self.proc and self.proc.poll() is not None):
                    raise AgentError(f"{self.name}: died while booting: " + self.diagnostics())
                if time.monotonic() > deadline:
                    raise AgentError(f"{self.name}: not ready after {timeout}s: "
                                     + self.diagnostics())
                self._cond.wait(0.2)
        return time.monotonic() - t0

    def request(self, req: dict[str, object], timeout: float) -> Result:
        gen = self._gen
        ident = self._send(req)
        deadline = time.monotonic() + timeout + 10
        with self._cond:
            while ident not in self._replies:
                if -1 in self._replies or self._gen != gen:
                    raise AgentError(f"{self.name}: agent connection closed")
                if time.monotonic() > deadline:
                    raise AgentError(f"{self.name}: no answer to {req.get('cmd', req['op'])!r}")
                self._cond.wait(0.5)
            msg = self._replies.pop(ident)
        return Result(int(msg["rc"]), str(msg["out"]), str(msg["err"]))  # type: ignore[call-overload]

    def run(self, cmd: str, timeout: float = 120.0, check: bool = False,
            input: str = "") -> Result:
        """Run ``sh -c cmd`` in the guest and return its exit code and output."""
        res = self.request({"op": "run", "cmd": cmd, "timeout": timeout, "input": input},
                           timeout)
        if check and not res.ok:
            raise AgentError(f"{self.name}: {cmd!r} exited {res.rc}: {res.out}{res.err}")
        return res

    def put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        res = self.request({"op": "put", "path": path, "mode": mode,
                            "data": base64.b64encode(data).decode()}, 60)
        if not res.ok:
            raise AgentError(f"{self.name}: put {path}: {res.err}")

    def diagnostics(self, lines: int = 30) -> str:
        out = []
        for path in (self.workdir / f"{self.name}.qemu.log", self.console_path):
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def stop(self) -> None:
        self._disconnect()
        if self.proc is not None:
            stop_pid(self.proc)


@dataclass
class Cluster:
    nodes: list[Node]
    hub: subprocess.Popen[bytes] | None = None
    boot_seconds: float = 0.0

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        if self.hub is not None:
            stop_pid(self.hub, grace=1.0)


def pin_images(images: Images, workdir: Path) -> Images:
    """The boot artefacts linked into ``workdir``: a restarted node boots the image it
    booted first, even after a build for edited sources dropped that image layer."""
    pinned = workdir / "images"
    pinned.mkdir(parents=True, exist_ok=True)
    paths = {}
    for what in ("kernel", "initramfs", "rootfs"):
        src: Path = getattr(images, what)
        dest = pinned / src.name
        if not dest.exists():
            try:
                os.link(src, dest)
            except OSError:  # another file system: a (sparse) copy
                subprocess.run(["cp", "--sparse=always", str(src), str(dest)], check=True)
        paths[what] = dest
    return replace(images, **paths)


def boot(images: Images, workdir: Path, count: int = 2, memory_mb: int = 512,
         disk_mb: int = 4096, timeout: float = 180.0,
         node_class: type[Node] | None = None) -> Cluster:
    """Boot ``count`` nodes in parallel and wait until every agent answers
    (``node_class``: a Node subclass, e.g. vm_systemd.SystemdNode)."""
    workdir.mkdir(parents=True, exist_ok=True)
    images = pin_images(images, workdir)
    ports = free_udp_ports(count + 1)
    hub = None
    if count == 2:
        netdevs = [
            f"udp=127.0.0.1:{ports[1]},localaddr=127.0.0.1:{ports[0]}",
            f"udp=127.0.0.1:{ports[0]},localaddr=127.0.0.1:{ports[1]}",
        ]
    else:
        hub_port, node_ports = ports[0], ports[1:]
        hub = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("hub.py")), str(hub_port),
             *map(str, node_ports)], stdin=subprocess.DEVNULL)
        netdevs = [f"udp=127.0.0.1:{hub_port},localaddr=127.0.0.1:{p}" for p in node_ports]
    nodes = [(node_class or Node)(f"node{i + 1}", i + 1, workdir, images, netdevs[i],
                                  memory_mb, disk_mb) for i in range(count)]
    cluster = Cluster(nodes, hub)
    t0 = time.monotonic()
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.boot_seconds = node.wait_ready(timeout - (time.monotonic() - t0))
    except BaseException:
        cluster.stop()
        raise
    cluster.boot_seconds = time.monotonic() - t0
    return cluster
