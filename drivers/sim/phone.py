"""`SimPhone`: a simulated Android phone on 127.0.0.1 that the real adb server can `adb connect`.

It wires the adb transport to the services (shell, sync, tcp:PORT to the uiautomator2 server)
over one shared phone state, and offers the fault hooks tests use: going offline, killing the
uiautomator2 server, answering slowly, and asking for authorisation again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from functools import partial

from drivers.sim.faults import Faults
from drivers.sim.screen import Screen
from drivers.sim.shell_service import serve_raw_shell, serve_v2_shell
from drivers.sim.state import PhoneState, default_props
from drivers.sim.sync import serve_sync
from drivers.sim.transport import Service, TransportConnection

HOST = "127.0.0.1"
# The adb server probes these ports on its own for emulators; a phone there would show twice.
EMULATOR_PORTS = range(5554, 5586)
FEATURES = "shell_v2,cmd"


class SimPhoneError(Exception):
    pass


def free_port() -> int:
    """A free TCP port on 127.0.0.1 outside the range the adb server scans for emulators."""
    while True:
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in EMULATOR_PORTS:
            return port


class SimPhone:
    def __init__(self, *, model: str = "Sim", width: int = 720, height: int = 1280) -> None:
        self._model = model
        self._size = (width, height)
        self.faults = Faults()
        self._state: PhoneState | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[TransportConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._port = 0

    @property
    def port(self) -> int:
        if not self._port:
            raise SimPhoneError("the phone is not started")
        return self._port

    @property
    def serial(self) -> str:
        """The name the adb server gives the phone after `adb connect`."""
        return f"{HOST}:{self.port}"

    @property
    def state(self) -> PhoneState:
        """Everything the phone knows (screen, files, properties, uiautomator2 server)."""
        if self._state is None:
            raise SimPhoneError("the phone is not started")
        return self._state

    async def start(self, port: int = 0) -> None:
        """Listen on `port` (0: a free port outside 5554-5585)."""
        if self._server is not None:
            raise SimPhoneError("the phone is already started")
        self._port = port or free_port()
        width, height = self._size
        self._state = PhoneState(
            props=default_props(self._model, f"SIM{self._port}"),
            screen=Screen(width, height),
            faults=self.faults,
        )
        await self._listen()

    async def stop(self) -> None:
        """Close every connection and the listener; the uiautomator2 server stops too."""
        await self._drop_connections()
        if self._state is not None:
            self._state.u2.stop()

    async def _listen(self) -> None:
        try:
            self._server = await asyncio.start_server(self._accept, HOST, self._port)
        except OSError as exc:
            raise SimPhoneError(f"cannot listen on {HOST}:{self._port}: {exc}") from exc

    async def _drop_connections(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self._connections):
            conn.close()
        tasks = list(self._tasks)
        # A closed connection ends its task (end of stream); one cancelled instead makes
        # Python 3.11's start_server log a spurious error.
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        banner = (
            f"device::ro.product.name=sim;ro.product.model={self._model};"
            f"ro.product.device=sim;features={FEATURES}"
        )
        conn = TransportConnection(reader, writer, banner, self._route, self.faults)
        self._connections.add(conn)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await conn.run()
        finally:
            self._connections.discard(conn)
            self._tasks.discard(task)

    def _route(self, destination: str) -> Service | None:
        state = self.state
        service, _, argument = destination.partition(":")
        if service in ("shell", "exec"):
            return partial(serve_raw_shell, state=state, command=argument)
        if service.startswith("shell,"):
            options = service.split(",")[1:]
            if "v2" in options:
                return partial(serve_v2_shell, state=state, command=argument)
            return partial(serve_raw_shell, state=state, command=argument)
        if service == "sync":
            return partial(serve_sync, fs=state.fs)
        if service == "tcp":
            port_text = argument.rsplit(":", 1)[-1]
            if port_text.isdigit():
                return state.u2.route(int(port_text))
        return None

    # -- fault hooks --------------------------------------------------------------------------

    async def go_offline(self) -> None:
        """Drop every adb connection and refuse new ones until `come_online`."""
        await self._drop_connections()

    async def come_online(self) -> None:
        """Accept adb connections again on the same port (the adb server needs a fresh
        `adb disconnect` + `adb connect` to notice)."""
        if self._server is None:
            await self._listen()

    def kill_u2_server(self) -> None:
        """Kill the uiautomator2 server: its app_process shell ends and /ping stops answering."""
        self.state.u2.stop()

    def set_latency(self, seconds: float) -> None:
        """Delay every newly opened adb stream (every command and u2 request) by `seconds`."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.faults.latency = seconds

    def hold_uiautomation(self, held: bool = True) -> None:
        """While held, starting the uiautomator2 server fails with "already registered"
        (uiautomator2 raises AccessibilityServiceAlreadyRegisteredError)."""
        self.faults.uiautomation_held = held

    def require_authorization(self) -> None:
        """Forget the host's key: connections are dropped and new ones answered with AUTH, so
        `adb devices` shows the phone `unauthorized` until `authorize()`."""
        self.faults.auth_required = True
        for conn in list(self._connections):
            conn.close()

    def authorize(self) -> None:
        """The user taps "allow": waiting connections come online and new ones need no AUTH."""
        self.faults.auth_required = False
        for conn in list(self._connections):
            if conn.awaiting_auth:
                conn.accept()
