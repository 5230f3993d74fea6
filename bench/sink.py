"""An SMTP sink on 127.0.0.1 that counts messages; prints the count when stopped (SIGTERM).

.venv/bin/python bench/sink.py PORT
"""

from __future__ import annotations

import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Count:
    def __init__(self) -> None:
        self.messages = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages += 1
        return "250 OK"


def main() -> None:
    handler = Count()
    controller = Controller(handler, hostname="127.0.0.1", port=int(sys.argv[1]))
    controller.start()
    print("ready", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    controller.stop()
    print(handler.messages, flush=True)


if __name__ == "__main__":
    main()
