#!/usr/bin/python3
"""SSH client for the pam-totp end-to-end tests: logs in with paramiko, answers each
keyboard-interactive prompt from a scripted list, runs one command, and reports everything it
saw (prompt texts and echo flags, info messages, the outcome) as JSON, so the Rust tests can
assert on the exact conversation a real client has with sshd.

Input (JSON on stdin, so answers never appear in a process listing):
  {"port": 2222, "user": "alice", "key": "/path/id_ed25519" or null,
   "password": "..." or null, "answers": ["123456", ...], "command": "id -un" or null,
   "shell": false, "timeout": 60}
Output (JSON on stdout):
  {"publickey": "success" | "partial" | "failure" | "skipped",
   "methods_after_publickey": [...],
   "rounds": [{"name": "...", "instruction": "...", "prompts": [["Verification code: ", false]]}],
   "auth": "success" | "partial" | "failure",
   "methods_left": [...], "error": "...", "unanswered": 0,
   "stdout": "...", "stderr": "...", "exit_status": 0, "shell_output": "..."}
With "password", the client uses the "password" method instead of keyboard-interactive. With
"shell", it asks for a terminal and a login shell, types "exit", and reports everything the
terminal showed: sshd prints the PAM messages of a successful login (PAM_TEXT_INFO) there, and
only there (and only in the connection's first session, so the shell comes before the command).
Each keyboard-interactive prompt takes the next answer; when the answers run out the client
answers "" and counts it in "unanswered". The client tries keyboard-interactive once only, so
one run is one attempt.
"""

import base64
import hashlib
import hmac
import struct
import time
import json
import socket
import sys

import paramiko


KEY_MARK = "Or enter this key by hand: "


def code_from_key(rounds):
    """The current RFC 6238 code (SHA1, 6 digits, 30 s) of the key shown in the rounds so far."""
    text = "\n".join(r["instruction"] + "\n" + "\n".join(p[0] for p in r["prompts"]) for r in rounds)
    at = text.rfind(KEY_MARK)
    if at < 0:
        return ""
    key = "".join(c for c in text[at + len(KEY_MARK):].split("\n")[0] if c.isalnum())
    secret = base64.b32decode(key + "=" * (-len(key) % 8))
    digest = hmac.new(secret, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 1000000)


def main():
    req = json.load(sys.stdin)
    timeout = float(req.get("timeout") or 60)
    answers = list(req.get("answers") or [])
    out = {
        "publickey": "skipped",
        "methods_after_publickey": [],
        "rounds": [],
        "auth": "failure",
        "methods_left": [],
        "error": "",
        "unanswered": 0,
        "stdout": "",
        "stderr": "",
        "exit_status": None,
        "shell_output": "",
    }

    def handler(name, instruction, prompt_list):
        out["rounds"].append(
            {
                "name": name,
                "instruction": instruction,
                "prompts": [[text, bool(echo)] for text, echo in prompt_list],
            }
        )
        replies = []
        for _ in prompt_list:
            if answers and answers[0] == "@code-from-key":
                # Enrollment at first login: the module shows a new key; answer with its code.
                answers.pop(0)
                replies.append(code_from_key(out["rounds"]))
            elif answers:
                replies.append(answers.pop(0))
            else:
                out["unanswered"] += 1
                replies.append("")
        return replies

    sock = socket.create_connection(("127.0.0.1", int(req["port"])), timeout=timeout)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.auth_timeout = timeout
    try:
        # The tests run against a private sshd with a throw-away host key: no host key check.
        transport.start_client(timeout=timeout)
        user = req["user"]
        if req.get("key"):
            key = paramiko.Ed25519Key.from_private_key_file(req["key"])
            try:
                left = transport.auth_publickey(user, key)
                out["methods_after_publickey"] = list(left or [])
                out["publickey"] = (
                    "success" if transport.is_authenticated() else "partial"
                )
            except paramiko.AuthenticationException as e:
                out["publickey"] = "failure"
                out["error"] = "publickey: %s" % e
        if req.get("password") is not None:
            if not transport.is_authenticated() and out["publickey"] != "failure":
                try:
                    left = transport.auth_password(user, req["password"])
                    out["methods_left"] = list(left or [])
                    out["auth"] = (
                        "success" if transport.is_authenticated() else "partial"
                    )
                except paramiko.BadAuthenticationType as e:
                    out["error"] = "password not allowed: %s" % (e.allowed_types,)
                except paramiko.AuthenticationException as e:
                    out["error"] = "password: %s" % e
        elif not transport.is_authenticated() and out["publickey"] != "failure":
            try:
                left = transport.auth_interactive(user, handler)
                out["methods_left"] = list(left or [])
                out["auth"] = "success" if transport.is_authenticated() else "partial"
            except paramiko.BadAuthenticationType as e:
                out["error"] = "keyboard-interactive not allowed: %s" % (e.allowed_types,)
            except paramiko.AuthenticationException as e:
                out["error"] = "keyboard-interactive: %s" % e
        elif transport.is_authenticated():
            out["auth"] = "success"

        # The shell first: sshd shows the login messages to the first session only.
        if transport.is_authenticated() and req.get("shell"):
            chan = transport.open_session(timeout=timeout)
            chan.settimeout(timeout)
            chan.get_pty(term="dumb", width=200, height=50)
            chan.invoke_shell()
            chan.sendall(b"exit\n")
            seen = b""
            while True:
                data = chan.recv(4096)
                if not data:
                    break
                seen += data
            out["shell_output"] = seen.decode("utf-8", "replace")
            chan.close()
        if transport.is_authenticated() and req.get("command"):
            chan = transport.open_session(timeout=timeout)
            chan.settimeout(timeout)
            chan.exec_command(req["command"])
            stdout = chan.makefile("rb")
            stderr = chan.makefile_stderr("rb")
            out["stdout"] = stdout.read().decode("utf-8", "replace")
            out["stderr"] = stderr.read().decode("utf-8", "replace")
            out["exit_status"] = chan.recv_exit_status()
            chan.close()
    except (paramiko.SSHException, socket.error, EOFError) as e:
        if not out["error"]:
            out["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        transport.close()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
