"""supervisord's event listener for the programs' output: each line, prefixed with the
program's name (``web      | …``), to its stderr, which supervisord writes to the terminal.
The programs' own log files keep their output unprefixed.

The protocol (supervisord's "event listener" documentation): say ``READY``, read a header
line and its payload, answer ``RESULT 2\\nOK``. PROCESS_LOG payloads are chunks of what the
program wrote, not lines: a line cut between two chunks waits for its end.
"""

from __future__ import annotations

import sys

WIDTH = 8  # the prefixes' width: the names of the Procfile's lines fit
LONGEST = 65536  # bytes of a line held back waiting for its end


def parse(header: str) -> dict[str, str]:
    return dict(token.split(":", 1) for token in header.split())


def prefixed(name: str, pending: bytes, chunk: bytes) -> tuple[bytes, bytes]:
    """The complete lines of ``pending + chunk`` prefixed, and what is left of a line."""
    text = pending + chunk
    *lines, rest = text.split(b"\n")
    if len(rest) > LONGEST:  # no end in sight: shown as it is
        lines, rest = [*lines, rest], b""
    prefix = f"{name:<{WIDTH}} | ".encode()
    return b"".join(prefix + line + b"\n" for line in lines), rest


def main() -> None:
    stdin, stdout, out = sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer
    pending: dict[str, bytes] = {}
    while True:
        stdout.write(b"READY\n")
        stdout.flush()
        header = parse(stdin.readline().decode())
        payload = stdin.read(int(header["len"]))
        meta, _, data = payload.partition(b"\n")
        name = parse(meta.decode())["processname"]
        lines, pending[name] = prefixed(name, pending.get(name, b""), data)
        out.write(lines)
        out.flush()
        stdout.write(b"RESULT 2\nOK")
        stdout.flush()


if __name__ == "__main__":
    main()
