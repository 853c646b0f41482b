"""Edge redaction: real-looking secrets inside full transcript lines, the real corpus (its speed is measured by
benchmarks/redaction_speed.py, not asserted here).

Each case renders one transcript line twice from the same template, once with the secrets and once with the
markers in their place, and asserts that redacting the first gives the second byte for byte (so each secret
is replaced, and nothing else changed), with the count, and that the result is JSON. Secrets are generated
from a seeded RNG so that no literal key sits in the repository for a scanner to flag.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stream.config import load_settings
from stream.tail.redaction import Redactor, redactor_from_settings

RNG = random.Random(20260102)
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"


def rand(alphabet: str, n: int) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


SECRETS = {
    "anthropic": "sk-ant-api03-" + rand(ALNUM + "-_", 93) + "AA",
    "openai": "sk-proj-" + rand(ALNUM, 74) + "T3BlbkFJ" + rand(ALNUM, 74),
    "stripe": "sk_live_51" + rand(ALNUM, 97),
    "slack": "xoxb-" + rand(string.digits, 12) + "-" + rand(string.digits, 13) + "-" + rand(ALNUM, 24),
    "google": "AIza" + rand(ALNUM + "-_", 35),
    "ghp": "ghp_" + rand(ALNUM, 36),
    "gh_pat": "github_pat_11" + rand(string.ascii_uppercase + string.digits, 20) + "_" + rand(ALNUM, 59),
    "glpat": "glpat-" + rand(ALNUM, 20),
    "akid": "AKIA" + rand(string.ascii_uppercase + "234567", 16),
    "akid2": "ASIA" + rand(string.ascii_uppercase + "234567", 16),
    "aws_secret": rand(B64, 40),
    "aws_secret2": rand(B64, 40),
    "aws_session": "IQoJb3JpZ2luX2VjE" + rand(B64, 300) + "==",
    "db_password": "S3cure-Pa55word!" + rand(ALNUM, 6),
    "session_secret": rand(ALNUM, 48),
    "admin_password": "correct-Horse-battery-" + rand(string.digits, 3),
    "vault_password": rand(ALNUM + "!#%^", 24),
    "jwt": ".".join([b64url(b'{"alg":"HS256","typ":"JWT"}'),
                     b64url(b'{"sub":"1234567890","name":"Ada","iat":1767380000}'),
                     b64url(RNG.randbytes(32))]),
}
KINDS = {
    "anthropic": "anthropic-key", "openai": "openai-key", "stripe": "stripe-key", "slack": "slack-token",
    "google": "google-api-key", "ghp": "github-token", "gh_pat": "github-token", "glpat": "url-password",
    "akid": "aws-access-key-id", "akid2": "aws-access-key-id", "aws_secret": "aws-secret-key",
    "aws_secret2": "aws-secret-key", "aws_session": "assignment", "db_password": "url-password",
    "session_secret": "assignment", "admin_password": "assignment", "vault_password": "assignment",
    "jwt": "jwt",
}
MARKERS = {name: f"[REDACTED:{kind}]" for name, kind in KINDS.items()}


def rsa_pem() -> str:
    body = rand(B64, 64 * 25 + 24) + "=="
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEA" + lines[0][16:], *lines[1:],
                      "-----END RSA PRIVATE KEY-----"])


PEM = rsa_pem()


def dump(obj: Any) -> bytes:
    """The way Claude Code writes a line: compact JSON, non-ASCII kept."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def bash_result_line(output: str) -> dict[str, Any]:
    return {
        "parentUuid": "671cb728-ae54-427e-8933-85527c936c32", "isSidechain": False, "userType": "external",
        "cwd": "/workspace", "sessionId": "c45af7b1-cb7c-4e51-93db-8cbb250a877a", "version": "2.0.76",
        "gitBranch": "main", "type": "user",
        "message": {"role": "user", "content": [{"tool_use_id": "toolu_01BYfGNktE4d25hZnxHwFh2s",
                                                 "type": "tool_result", "content": output, "is_error": False}]},
        "uuid": "855f7359-f4d6-47eb-aad0-3bc49f6d745f", "timestamp": "2026-01-02T19:18:34.728Z",
        "toolUseResult": {"stdout": output, "stderr": "", "interrupted": False, "isImage": False},
    }


def read_result_line(path: str, content: str) -> dict[str, Any]:
    numbered = "\n".join(f"{i:>6}→{line}" for i, line in enumerate(content.split("\n"), 1))
    line = bash_result_line(numbered)
    line["toolUseResult"] = {"type": "text", "file": {"filePath": path, "content": content,
                                                      "numLines": content.count("\n") + 1, "startLine": 1,
                                                      "totalLines": content.count("\n") + 1}}
    return line


def assistant_tool_use_line(name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {
        "parentUuid": "855f7359-f4d6-47eb-aad0-3bc49f6d745f", "isSidechain": False, "userType": "external",
        "cwd": "/workspace", "sessionId": "c45af7b1-cb7c-4e51-93db-8cbb250a877a", "version": "2.0.76",
        "gitBranch": "main", "type": "assistant", "requestId": "req_011CWivLv8n5sSdW6bqQ9c8e",
        "message": {"model": "claude-opus-4-5-20251101", "id": "msg_01BAEJBeyJw6UF9QPzUcPBom",
                    "type": "message", "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_01SQT4P6ZH2mtwzcwMPjrSdG", "name": name,
                                 "input": tool_input}],
                    "stop_reason": None, "usage": {"input_tokens": 3, "cache_read_input_tokens": 21044,
                                                   "output_tokens": 212}},
        "uuid": "9a3c7f51-0d1e-4b7a-8f3e-2c6d5b4a3f21", "timestamp": "2026-01-02T19:18:36.101Z",
    }


def render(template: Any, values: dict[str, str]) -> Any:
    """Fill `{name}` holes in every string of a JSON-able structure."""
    if isinstance(template, str):
        return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
    if isinstance(template, dict):
        return {k: render(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, values) for v in template]
    return template


def check(template: dict[str, Any], count: int, redactor: Redactor | None = None,
          values: dict[str, str] | None = None, markers: dict[str, str] | None = None) -> bytes:
    """Redact the line rendered with secrets; it must equal the line rendered with markers, byte for byte."""
    values = values or {**SECRETS, "pem": PEM}
    markers = markers or {**MARKERS, "pem": "[REDACTED:private-key]"}
    original = dump(render(template, values))
    expected = dump(render(template, markers))
    assert original != expected
    redacted, n = (redactor or Redactor()).redact(original)
    assert redacted.decode() == expected.decode()
    assert n == count
    assert json.loads(redacted) == render(template, markers)
    return redacted


ENV_FILE = """# app settings
DEBUG=false
PORT=8080
LOG_LEVEL=info
DATABASE_URL=postgres://app:{db_password}@db.internal:5432/app
ANTHROPIC_API_KEY={anthropic}
OPENAI_API_KEY={openai}
STRIPE_SECRET_KEY={stripe}
SLACK_BOT_TOKEN={slack}
GOOGLE_MAPS_API_KEY={google}
SESSION_SECRET="{session_secret}"
ADMIN_PASSWORD={admin_password}
MAX_TOKENS=4096"""


def test_bash_output_of_an_env_file() -> None:
    """`cat .env` printed into a Bash tool_result (and toolUseResult.stdout): 8 secrets, each twice."""
    redacted = check(bash_result_line(ENV_FILE), count=16)
    text = json.loads(redacted)["toolUseResult"]["stdout"]
    # the non-secrets and what surrounds each secret stay as they were
    for kept in ("DEBUG=false", "PORT=8080", "LOG_LEVEL=info", "MAX_TOKENS=4096",
                 "postgres://app:[REDACTED:url-password]@db.internal:5432/app",
                 'SESSION_SECRET="[REDACTED:assignment]"'):
        assert kept in text


def test_read_of_a_pem_private_key() -> None:
    """A Read of a key file: numbered lines in the tool_result (the block spans the line numbers) and the
    plain file in toolUseResult.file.content: one block each."""
    template = read_result_line("/workspace/deploy/id_rsa", "{pem}\n")
    redacted = json.loads(check(template, count=2))
    assert redacted["message"]["content"][0]["content"] == "     1→[REDACTED:private-key]\n     2→"
    assert redacted["toolUseResult"]["file"]["content"] == "[REDACTED:private-key]\n"


def test_pem_of_other_kinds_and_cut_short() -> None:
    ec = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI" + rand(B64, 60) + "\n" + rand(B64, 60) + "\n-----END EC PRIVATE KEY-----"
    ssh = ("-----BEGIN OPENSSH PRIVATE KEY-----\r\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU" + rand(B64, 40)
           + "\r\n-----END OPENSSH PRIVATE KEY-----")
    cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + rand(B64, 32) + "\n" + rand(B64, 64)
    values = {"ec": ec, "ssh": ssh, "cut": cut}
    markers = {k: "[REDACTED:private-key]" for k in values}
    template = bash_result_line("$ cat keys/*\n{ec}\n{ssh}\n{cut}\n[output truncated]")
    check(template, count=6, values=values, markers=markers)


def test_git_remote_with_tokens() -> None:
    """`git remote -v` with tokens in the URLs: the token goes, user and host stay (kind: the token's own
    when it is a known format)."""
    output = ("origin\thttps://x-access-token:{ghp}@github.com/acme/payments.git (fetch)\n"
              "origin\thttps://x-access-token:{ghp}@github.com/acme/payments.git (push)\n"
              "mirror\thttps://oauth2:{glpat}@gitlab.example.com/platform/payments.git (fetch)\n"
              "ci\thttps://ci-bot:{gh_pat}@github.com/acme/payments.git (fetch)")
    redacted = json.loads(check(bash_result_line(output), count=8))
    assert redacted["toolUseResult"]["stdout"].splitlines()[0] == (
        "origin\thttps://x-access-token:[REDACTED:github-token]@github.com/acme/payments.git (fetch)")


def test_aws_credentials_file() -> None:
    output = ("[default]\naws_access_key_id = {akid}\naws_secret_access_key = {aws_secret}\nregion = eu-west-1\n\n"
              "[deploy]\naws_access_key_id={akid2}\naws_secret_access_key={aws_secret2}\n"
              "aws_session_token={aws_session}\noutput = json")
    check(read_result_line("/root/.aws/credentials", output), count=10)


def test_jwt_in_a_curl_command_and_a_json_key_in_tool_input() -> None:
    curl = assistant_tool_use_line("Bash", {
        "command": 'curl -sS -H "Authorization: Bearer {jwt}" https://api.example.com/v1/me | jq .',
        "description": "Call the API as the test user"})
    check(curl, count=1)
    # an MCP tool's arguments: the line's own JSON holds "password": "..."
    vault = assistant_tool_use_line("mcp__vault__kv_put", {"path": "kv/payments/db", "password": "{vault_password}",
                                                           "ttl": "24h"})
    check(vault, count=1)


def test_secrets_next_to_escapes() -> None:
    """Secrets glued to \\n, \\t, quotes, ANSI colour codes and a backslash must be cut exactly."""
    output = ('{ghp}\n\t{openai}\t\n"{anthropic}"\n\x1b[32m OK \x1b[0m {slack}\x1b[0m\n'
              'C:\\keys\\{google}\\n')
    check(bash_result_line(output), count=10)


NOT_SECRETS = """commit 9f2c1e7a3b5d4c6e8f0a1b2c3d4e5f6a7b8c9d0e
Author: Ada <ada@example.com>
session c45af7b1-cb7c-4e51-93db-8cbb250a877a tool toolu_01BYfGNktE4d25hZnxHwFh2s msg_01XmebeGajA4pbTWpVxoxJUQ
request req_011CWivLv8n5sSdW6bqQ9c8e; see https://github.com/acme/api/commit/9f2c1e7a and git@github.com:acme/api.git
http://localhost:8080/api?token=  and  ssh://git@github.com:22/acme/api.git
    token = ReviewTokenStore.mint(project.id)
    api_key: str | None = None
    max_tokens=4096, input_tokens: 12, token_count = 3, TOKEN_TTL=3600
    password=os.environ["DB_PASSWORD"]
    apiKey = posthogAPIKey
export GITHUB_TOKEN=$(gh auth token)
POSTHOG_API_KEY: ${{ secrets.POSTHOG_API_KEY }}
OPENAI_API_KEY=sk-...  GH_TOKEN="github_pat_xxxx"  api_key = "[REDACTED]"  MISE_GITHUB_TOKEN: ***
pip install sk-learn-tutorial-for-beginners; task-notification; disk-usage-report-2026
"""


def test_ids_code_and_placeholders_are_left_alone() -> None:
    image = base64.b64encode(RNG.randbytes(30000)).decode()
    line = bash_result_line(NOT_SECRETS)
    line["message"]["content"].append({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                   "data": image}})
    raw = dump(line)
    redacted, n = Redactor().redact(raw)
    assert (n, Redactor().find(raw)) == (0, [])
    assert redacted is raw


def test_redacting_twice_changes_nothing_more() -> None:
    raw = dump(render(bash_result_line(ENV_FILE), SECRETS))
    once, n = Redactor().redact(raw)
    assert n == 16
    assert Redactor().redact(once) == (once, 0)


def test_extra_patterns_and_a_secret_group() -> None:
    redactor = Redactor(["ACME-[0-9]{8}", r"internal_id=(?P<secret>\w+)"])
    template = bash_result_line("ticket {ticket} for internal_id={iid} (ACME-123 is too short)")
    check(template, count=4, redactor=redactor, values={"ticket": "ACME-20260102", "iid": "u_81623"},
          markers={"ticket": "[REDACTED:custom]", "iid": "[REDACTED:custom]"})
    # the marker text is ours, not the pattern's: "ACME-" went with the match
    redacted = json.loads(redactor.redact(dump(render(template, {"ticket": "ACME-20260102", "iid": "x"})))[0])
    assert redacted["toolUseResult"]["stdout"].startswith("ticket [REDACTED:custom] for")


def test_patterns_that_cross_json_structure_cannot_break_the_line() -> None:
    """The guard: a user pattern reaching over a closing quote is cut at the string's end; one that starts
    inside an escape takes the whole escape; one that matches JSON structure only is ignored."""
    raw = dump({"a": "x secret1\nnext", "b": "tail", "n": 12345})
    redacted, n = Redactor([r'secret1[\s\S]{0,30}', r'n[0-9]{5}', r'"n":1']).redact(raw)
    assert json.loads(redacted) == {"a": "x [REDACTED:custom]", "b": "tail", "n": 12345}
    assert n == 1
    raw = dump({"a": "line\n123456 end"})
    assert json.loads(Redactor([r"n[0-9]{6}"]).redact(raw)[0]) == {"a": "line[REDACTED:custom] end"}
    raw = dump({"a": "ok \x1b[0m done \\\\u1234"})  # \u001b in the line; then two escaped backslashes
    assert raw == b'{"a":"ok \\u001b[0m done \\\\\\\\u1234"}'
    assert json.loads(Redactor([r"1b\[0m"]).redact(raw)[0]) == {"a": "ok [REDACTED:custom] done \\\\u1234"}
    assert json.loads(Redactor([r"ok \\u00"]).redact(raw)[0]) == {"a": "[REDACTED:custom][0m done \\\\u1234"}
    assert json.loads(Redactor([r"u12"]).redact(raw)[0]) == {"a": "ok \x1b[0m done \\\\[REDACTED:custom]34"}


def test_marker_format_is_escaped_into_the_line() -> None:
    redactor = Redactor(marker_fmt='<"{kind}"\\>')
    raw = dump(render(bash_result_line("key {ghp}"), SECRETS))
    redacted, n = redactor.redact(raw)
    assert n == 2
    assert json.loads(redacted)["toolUseResult"]["stdout"] == 'key <"github-token"\\>'


def test_redactor_from_settings(tmp_path: Path) -> None:
    env = {"CCSTREAM_DATA_DIR": str(tmp_path), "CCSTREAM_REDACTION_PATTERNS": "ACME-[0-9]{8}"}
    assert load_settings(env).redaction_patterns == ["ACME-[0-9]{8}"]
    redactor = redactor_from_settings(load_settings(env))
    assert redactor is not None
    assert redactor.redact(b'{"a":"ACME-12345678 and ' + SECRETS["ghp"].encode() + b'"}') == (
        b'{"a":"[REDACTED:custom] and [REDACTED:github-token]"}', 2)
    assert redactor_from_settings(load_settings({**env, "CCSTREAM_REDACTION": "false"})) is None
    assert load_settings({"CCSTREAM_DATA_DIR": str(tmp_path)}).redaction_patterns == []
    with pytest.raises(ValueError, match="matches the empty string"):
        Redactor(["x*"])


# ---- the real corpus --------------------------------------------------------------------------------------
def corpus_objects(corpus: Path) -> list[tuple[str, int, bytes]]:
    """Every JSON object of every file (glued objects split), with its file and line number."""
    decoder = json.JSONDecoder()
    out = []
    for path in sorted(corpus.rglob("*.jsonl")):
        for no, line in enumerate(path.read_bytes().split(b"\n"), 1):
            text = line.decode()
            pos = 0
            while pos < len(text):
                _, end = decoder.raw_decode(text, pos)
                out.append((f"{path.relative_to(corpus)}:{no}", no, text[pos:end].encode()))
                pos = end
    return out


MARKER_RE = re.compile(r"\[REDACTED:([a-z-]+)\]")


def replaced(orig: Any, red: Any, where: str) -> list[tuple[str, str]]:
    """(kind, original text) of every marker in `red`, checking that `red` is `orig` with only substrings of
    its strings replaced by markers."""
    if isinstance(orig, dict):
        assert isinstance(red, dict) and list(orig) == list(red), where
        return [x for k in orig for x in replaced(orig[k], red[k], f"{where}.{k}")]
    if isinstance(orig, list):
        assert isinstance(red, list) and len(orig) == len(red), where
        return [x for i, (o, r) in enumerate(zip(orig, red, strict=True)) for x in replaced(o, r, f"{where}[{i}]")]
    if isinstance(orig, str) and orig != red:
        assert isinstance(red, str), where
        pieces = MARKER_RE.split(red)  # literal, kind, literal, kind, ..., literal
        rx = "(.+?)".join(re.escape(p) for p in pieces[::2])
        m = re.fullmatch(rx, orig, re.DOTALL)
        assert m, f"{where}: {red[:200]!r} is not {orig[:200]!r} with markers"
        return list(zip(pieces[1::2], m.groups(), strict=True))
    assert orig == red, where
    return []


# Every redaction the real corpus produces, explained. All are assignments of literals to secret-named
# variables in code and docs (the PostHog key constants of entireio/cli) and one fake Stripe key in a doc.
CORPUS_EXPECTED = Counter({
    ("assignment", "phc_development_key"): 24,  # Go: PostHogAPIKey = "phc_development_key"
    ("assignment", "disabled"): 8,  # Go: apiKey = "disabled"
    ("assignment", "phc_test_key"): 7,  # shell: POSTHOG_API_KEY=phc_test_key go run ...
    ("assignment", "test_key"): 6,  # docs: `POSTHOG_API_KEY=test_key entire help`
    ("assignment", "phc_"): 1,  # Go: var posthogAPIKey = "phc_"
    ("stripe-key", "sk_live_3j20d9as0d2j30d2"): 2,  # a doc's example: API_KEY=sk_live_3j20d9as0d2j30d2
})


def test_every_corpus_object_stays_valid_and_only_explained_secrets_go(corpus: Path) -> None:
    redactor = Redactor()
    objects = corpus_objects(corpus)
    assert len(objects) == 18_918
    found: Counter[tuple[str, str]] = Counter()
    where_found: list[str] = []
    for where, _no, raw in objects:
        redacted, n = redactor.redact(raw)
        if n == 0:
            assert redacted == raw, where
            continue
        pairs = replaced(json.loads(raw), json.loads(redacted), where)
        assert len(pairs) == n, where
        found.update(pairs)
        where_found += [f"{where}: {kind} {secret!r}" for kind, secret in pairs]
    assert found == CORPUS_EXPECTED, "redactions in the corpus:\n" + "\n".join(where_found)

def test_redact_many_is_redact_line_by_line(corpus: Path) -> None:
    """The tailer redacts a read step's records at once: the same bytes and counts as one line at a time, on
    the corpus (in ~1 MiB steps), on lines made of every kind of secret, and with a custom anchored pattern
    (custom patterns are never prefiltered over the joined text)."""
    raws = [raw for _, _, raw in corpus_objects(corpus)]
    redactor = Redactor()
    step: list[bytes] = []
    size = 0
    for raw in raws:
        step.append(raw)
        size += len(raw)
        if size >= 1 << 20:
            assert redactor.redact_many(step) == [redactor.redact(r) for r in step]
            step, size = [], 0
    assert redactor.redact_many(step) == [redactor.redact(r) for r in step]
    lines = [json.dumps({"i": i, "text": f"export {name.upper()}={secret} and then"}).encode()
             for i, (name, secret) in enumerate(SECRETS.items())]
    lines += [json.dumps({"pem": PEM}).encode(), b'{"plain":"nothing here"}']
    mixed = raws[:50] + lines + raws[50:100]
    got = redactor.redact_many(mixed)
    assert got == [redactor.redact(r) for r in mixed]
    assert sum(n for _, n in got) > len(SECRETS) // 2  # the prefilter must not hide the patterns that hit
    anchored = Redactor([r'^\{"secret_first":"(?P<secret>[a-z]+)"'])
    few = [b'{"secret_first":"hunter","x":1}', b'{"x":2}', b'{"secret_first":"again"}']
    assert anchored.redact_many(few) == [anchored.redact(r) for r in few]
    assert [n for _, n in anchored.redact_many(few)] == [1, 0, 1]
