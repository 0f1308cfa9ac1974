#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for the end-to-end tests.

Usage: smtp_sink.py PORT LOGFILE

Listens on 127.0.0.1:PORT and appends one JSON line per accepted message to
LOGFILE: arrival time, envelope sender and recipients, the Subject,
Message-ID, In-Reply-To, References and Auto-Submitted headers, the body
text, and the attachments (file name, content type, size; each saved under
LOGFILE.files/, its path in "path"). Prints "ready" once it listens.
"""
import asyncio
import email
import email.policy
import json
import os
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, path):
        self.path = path

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = msg.get_body(preferencelist=("plain",))
        record = {
            "at": time.time(),
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(msg.get("Subject", "")),
            "message_id": str(msg.get("Message-ID", "")),
            "in_reply_to": str(msg.get("In-Reply-To", "")),
            "references": str(msg.get("References", "")),
            "auto_submitted": str(msg.get("Auto-Submitted", "")),
            "body": body.get_content() if body is not None else "",
            "attachments": [],
        }
        for n, part in enumerate(msg.iter_attachments()):
            data = part.get_payload(decode=True) or b""
            name = os.path.basename(part.get_filename() or "attachment")
            folder = self.path + ".files"
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, "%d-%d-%s" % (time.time_ns(), n, name))
            with open(path, "wb") as f:
                f.write(data)
            record["attachments"].append({
                "filename": name,
                "content_type": part.get_content_type(),
                "size": len(data),
                "path": path,
            })
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK"


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(path), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
