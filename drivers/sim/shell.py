"""A small POSIX-like shell: quoting, `$?`/`$VAR`, `;` `&&` `||` `|`, redirections, `VAR=x cmd`.

It runs the commands of `drivers.sim.commands`; anything else is `not found` with status 127.
Pipes buffer: each stage's output becomes the next stage's stdin when the stage ends.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from drivers.sim.fs import FSError
from drivers.sim.state import PhoneState

Writer = Callable[[bytes], Awaitable[None]]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)


class ShellSyntaxError(Exception):
    pass


@dataclass
class Word:
    parts: list[tuple[str, str]] = field(default_factory=list)
    """("lit", text) or ("var", name), in order."""
    quoted: bool = False

    def add(self, kind: str, value: str) -> None:
        self.parts.append((kind, value))

    def literal_prefix(self) -> str:
        """The unquoted-literal text this word starts with (for assignments and fd numbers)."""
        return self.parts[0][1] if self.parts and self.parts[0][0] == "lit" else ""


@dataclass
class Redirect:
    fd: int
    op: str  # ">", ">>", "<", ">&"
    target: Word


@dataclass
class Command:
    words: list[Word] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)


Pipeline = list[Command]
# Each pipeline with the operator that decides whether it runs: "", ";", "&&" or "||".
Script = list[tuple[str, Pipeline]]

Token = Word | str


def tokenize(line: str) -> list[Token]:
    tokens: list[Token] = []
    word: Word | None = None
    i = 0
    n = len(line)

    def current() -> Word:
        nonlocal word
        if word is None:
            word = Word()
        return word

    def finish() -> None:
        nonlocal word
        if word is not None:
            tokens.append(word)
            word = None

    def read_var(at: int, target: Word) -> int:
        """Parse a `$...` at `at` into target; returns the index after it."""
        if at + 1 < n and line[at + 1] == "?":
            target.add("var", "?")
            return at + 2
        if at + 1 < n and line[at + 1] == "{":
            end = line.find("}", at + 2)
            if end == -1:
                raise ShellSyntaxError("bad substitution")
            target.add("var", line[at + 2 : end])
            return end + 1
        match = _NAME.match(line, at + 1)
        if match:
            target.add("var", match.group())
            return match.end()
        target.add("lit", "$")
        return at + 1

    while i < n:
        ch = line[i]
        if ch in " \t":
            finish()
            i += 1
        elif ch == "#" and word is None:
            break
        elif ch in ";&|\n":
            finish()
            pair = line[i : i + 2]
            if pair in ("&&", "||"):
                tokens.append(pair)
                i += 2
            else:
                tokens.append(";" if ch == "\n" else ch)
                i += 1
        elif ch in "<>":
            fd = 1 if ch == ">" else 0
            if (
                word is not None
                and not word.quoted
                and word.literal_prefix().isdigit()
                and len(word.parts) == 1
            ):
                fd = int(word.literal_prefix())
                word = None
            finish()
            if line.startswith(">>", i):
                op, i = ">>", i + 2
            elif line.startswith(">&", i):
                op, i = ">&", i + 2
            else:
                op, i = ch, i + 1
            tokens.append(f"redirect:{fd}:{op}")
        elif ch == "'":
            end = line.find("'", i + 1)
            if end == -1:
                raise ShellSyntaxError("unterminated quoted string")
            target = current()
            target.quoted = True
            target.add("lit", line[i + 1 : end])
            i = end + 1
        elif ch == '"':
            target = current()
            target.quoted = True
            i += 1
            while True:
                if i >= n:
                    raise ShellSyntaxError("unterminated quoted string")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and line[i + 1] in '$"\\`':
                    target.add("lit", line[i + 1])
                    i += 2
                elif c == "$":
                    i = read_var(i, target)
                else:
                    target.add("lit", c)
                    i += 1
        elif ch == "\\":
            if i + 1 < n and line[i + 1] != "\n":
                current().add("lit", line[i + 1])
            i += 2
        elif ch == "$":
            i = read_var(i, current())
        else:
            current().add("lit", ch)
            i += 1
    finish()
    return tokens


def parse(line: str) -> Script:
    script: Script = []
    pipeline: Pipeline = []
    command = Command()
    operator = ""
    tokens = tokenize(line)
    i = 0

    def end_command() -> None:
        nonlocal command
        if not command.words and not command.redirects:
            raise ShellSyntaxError("syntax error: unexpected operator")
        pipeline.append(command)
        command = Command()

    while i < len(tokens):
        token = tokens[i]
        if isinstance(token, Word):
            command.words.append(_merge(token))
        elif token.startswith("redirect:"):
            _, fd, op = token.split(":", 2)
            if i + 1 >= len(tokens) or not isinstance(tokens[i + 1], Word):
                raise ShellSyntaxError("syntax error: redirection without a target")
            target = tokens[i + 1]
            assert isinstance(target, Word)
            command.redirects.append(Redirect(int(fd), op, _merge(target)))
            i += 1
        elif token == "|":
            end_command()
        elif token == "&":
            raise ShellSyntaxError("background jobs (&) are not supported by the sim")
        else:
            if command.words or command.redirects:
                end_command()
            elif pipeline or token != ";":
                raise ShellSyntaxError(f"syntax error: unexpected '{token}'")
            if pipeline:
                script.append((operator, pipeline))
            pipeline = []
            operator = token
        i += 1
    if command.words or command.redirects:
        end_command()
    if pipeline:
        script.append((operator, pipeline))
    elif operator in ("&&", "||", "|"):
        raise ShellSyntaxError(f"syntax error: '{operator}' at the end")
    return script


def _merge(word: Word) -> Word:
    merged = Word(quoted=word.quoted)
    for kind, value in word.parts:
        if kind == "lit" and merged.parts and merged.parts[-1][0] == "lit":
            merged.parts[-1] = ("lit", merged.parts[-1][1] + value)
        else:
            merged.parts.append((kind, value))
    return merged


@dataclass
class Context:
    """What a command sees: its arguments, environment, stdin, output, and the phone."""

    args: list[str]
    env: dict[str, str]
    stdin: bytes
    out: Writer
    err: Writer
    state: PhoneState

    async def print(self, text: str) -> None:
        await self.out(text.encode())

    async def fail(self, text: str, status: int = 1) -> int:
        await self.err(f"{self.args[0]}: {text}\n".encode())
        return status


Builtin = Callable[[Context], Awaitable[int]]


class Interpreter:
    def __init__(self, state: PhoneState, commands: dict[str, Builtin]) -> None:
        self.state = state
        self.commands = commands
        self.status = 0
        self.env = {"PATH": "/system/bin", "HOME": "/", "USER": "shell", "ANDROID_DATA": "/data"}

    def expand(self, word: Word) -> str:
        out = []
        for kind, value in word.parts:
            if kind == "lit":
                out.append(value)
            elif value == "?":
                out.append(str(self.status))
            else:
                out.append(self.env.get(value, ""))
        return "".join(out)

    async def run(self, line: str, out: Writer, err: Writer) -> int:
        try:
            script = parse(line)
        except ShellSyntaxError as exc:
            await err(f"/system/bin/sh: {exc}\n".encode())
            self.status = 2
            return 2
        for operator, pipeline in script:
            if operator == "&&" and self.status != 0:
                continue
            if operator == "||" and self.status == 0:
                continue
            self.status = await self._pipeline(pipeline, out, err)
        return self.status

    async def _pipeline(self, pipeline: Pipeline, out: Writer, err: Writer) -> int:
        stdin = b""
        status = 0
        for index, command in enumerate(pipeline):
            if index == len(pipeline) - 1:
                status = await self._command(command, stdin, out, err)
            else:
                captured = bytearray()

                async def capture(data: bytes, buf: bytearray = captured) -> None:
                    buf.extend(data)

                status = await self._command(command, stdin, capture, err)
                stdin = bytes(captured)
        return status

    async def _command(self, command: Command, stdin: bytes, out: Writer, err: Writer) -> int:
        words = [self.expand(word) for word in command.words]
        env = dict(self.env)
        assignments: dict[str, str] = {}
        while (
            words
            and (match := _ASSIGNMENT.fullmatch(words[0]))
            and not command.words[len(command.words) - len(words)].quoted
        ):
            assignments[match.group(1)] = match.group(2)
            words.pop(0)
        if not words:
            self.env.update(assignments)
            return 0
        env.update(assignments)
        fs = self.state.fs
        files: list[tuple[str, bool, bytearray]] = []
        sinks: dict[int, Writer] = {1: out, 2: err}
        for redirect in command.redirects:
            target = self.expand(redirect.target)
            if redirect.op == "<":
                try:
                    stdin = fs.read(target)
                except FSError as exc:
                    await err(f"/system/bin/sh: {exc}\n".encode())
                    return 1
            elif redirect.op == ">&":
                if target not in ("1", "2"):
                    await err(f"/system/bin/sh: {target}: bad file descriptor\n".encode())
                    return 1
                sinks[redirect.fd] = sinks[int(target)]
            elif target == "/dev/null":
                sinks[redirect.fd] = _discard
            else:
                buffer = bytearray()
                files.append((target, redirect.op == ">>", buffer))
                sinks[redirect.fd] = _collector(buffer)
        name = words[0]
        builtin = self.commands.get(
            name.rsplit("/", 1)[-1] if name.startswith("/system/bin/") else name
        )
        if builtin is None:
            await sinks[2](f"/system/bin/sh: {name}: not found\n".encode())
            status = 127
        else:
            ctx = Context(words, env, stdin, sinks.get(1, out), sinks.get(2, err), self.state)
            status = await builtin(ctx)
        for path, append, buffer in files:
            try:
                fs.write(path, bytes(buffer), append=append)
            except FSError as exc:
                await err(f"/system/bin/sh: {exc}\n".encode())
                status = 1
        return status


async def _discard(data: bytes) -> None:
    return None


def _collector(buffer: bytearray) -> Writer:
    async def collect(data: bytes) -> None:
        buffer.extend(data)

    return collect
