#!/usr/bin/env python3
"""docker-compose ``env_file:`` oracle helper for ezmsi's tests.

This is NOT a re-implementation of compose's env-file reading: the oracle is
the real ``docker-compose`` (1.29.2, Debian package; it reads ``env_file:``
with python-dotenv).  This script (a) (re)creates the byte-exact fixture
corpus in ``Tests/Fixtures/compose-envfiles/`` and (b) runs env-files through
the real docker-compose and prints what it resolved.

Usage
-----
``compose_env_oracle.py --make-fixtures DIR``
    Write the ``cNN-description.env`` fixtures and ``README.md`` into DIR.

``compose_env_oracle.py --print-env``
    Print the environment docker-compose runs with (``ORACLE_ENV`` plus
    DOCKER_HOST if set) as a JSON object.

``compose_env_oracle.py [--basename] [--jobs N] [--direct] FILE...``
    For each FILE write, in a fresh temporary project directory, a
    ``docker-compose.yml`` with one service ``s`` whose ``env_file:`` is FILE
    (absolute), and run there, with a fixed environment (``env -i``, see
    ``ORACLE_ENV``)::

        docker-compose -f docker-compose.yml config

    ``config`` resolves ``env_file:`` into ``services.s.environment`` (it does
    not contact the daemon).  Prints ONE JSON object ``{FILE: {"exit": int,
    "env": {KEY: VALUE or null} or null, "warnings": [LINE...], "error": str
    or null}}`` (with ``--direct`` also ``"direct"`` and ``"direct_agrees"``):

    - ``env``: the resolved ``environment:``; ``config`` prints every ``$`` as
      ``$$`` (it escapes its output for re-use as a compose file), which is
      undone here.  ``null`` is a bare ``KEY`` line with KEY not set in the
      environment of docker-compose.
    - ``warnings``: the line numbers of ``Python-dotenv could not parse
      statement starting at line N`` on stderr (the line is skipped).
    - ``error``: when docker-compose exits non-zero, the last line of its
      stderr (e.g. the ``UnicodeDecodeError: ...`` of a traceback).
    - ``direct`` (``--direct``): the same file through compose's own Python functions
      (``compose.config.environment.env_vars_from_file`` then
      ``compose.config.config.resolve_env_var``) in a subprocess with the
      same environment: ``{"env": ..., "error": ...}``.  It must equal the
      CLI's answer; ``direct_agrees`` says whether it does.

    The interpreter is the one in docker-compose's ``#!`` line (it has the
    ``compose`` and ``yaml`` modules); the script re-executes itself with it
    if the running python lacks them.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

BOM = b"\xef\xbb\xbf"

# The whole environment docker-compose runs with (plus DOCKER_HOST if set in ours). The Swift test gives the
# Swift parser exactly these variables.
ORACLE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "EZMSI_HOST_SET": "hostvalue",
    "EZMSI_COMPOSE_VAR": "fromenv",
    "EZMSI_COMPOSE_EMPTY": "",
}

# (file name, bytes, what it tests).  Bytes are exact.
FIXTURES = [
    ("c01-double-quotes.env", b'PW="a b"\n', "double quotes are stripped: 'a b'"),
    ("c02-single-quotes.env", b"PW='a b'\n", "single quotes are stripped"),
    ("c03-inline-comment.env", b"A=value # comment\n", "' #' starts an inline comment in an unquoted value"),
    ("c04-inline-comment-tab.env", b"A=value\t#c\n", "tab before '#' also starts a comment"),
    ("c05-hash-no-space.env", b"A=val#ue\n", "'#' without whitespace before it stays in the value"),
    ("c06-eq-space-hash.env", b"A= #notcomment\n",
     "spaces right after '=' are skipped first, so ' #x' becomes '#x' (not a comment)"),
    ("c07-quoted-then-comment.env", b'A="x y" # c\n', "comment after a closing quote is dropped"),
    ("c08-quoted-then-garbage.env", b'A="x"y\nB=2\n', "text after the closing quote: line skipped with a warning"),
    ("c09-var-braces.env", b"A=${EZMSI_COMPOSE_VAR}\n", "${VAR} interpolated from compose's environment"),
    ("c10-var-no-braces.env", b"A=$EZMSI_COMPOSE_VAR\n", "$VAR without braces is NOT interpolated"),
    ("c11-var-default-unset.env", b"A=${EZMSI_UNSET:-fallback}\n", "${VAR:-default} with VAR unset"),
    ("c12-var-default-set.env", b"A=${EZMSI_COMPOSE_VAR:-fallback}\n", "${VAR:-default} with VAR set"),
    ("c13-var-default-empty-set.env", b"A=${EZMSI_COMPOSE_EMPTY:-fallback}\n",
     "${VAR:-default} with VAR set but empty: the empty value wins (python-dotenv uses the default only if unset)"),
    ("c14-var-from-file.env", b"A=one\nB=${A}-two\n", "${A} takes A from earlier in the same file"),
    ("c15-var-later-in-file.env", b"B=${A}\nA=one\n", "a variable defined later in the file is not seen"),
    ("c16-var-bare-earlier.env", b"EZMSI_HOST_SET\nB=${EZMSI_HOST_SET}\n",
     "a bare key earlier in the file hides the environment's value from ${...} (gives '')"),
    ("c17-double-dollar.env", b"A=$$\nB=$${EZMSI_COMPOSE_VAR}\n", "'$$' is not an escape in env_file: kept, ${..} still interpolated"),
    ("c18-var-in-single-quotes.env", b"A='${EZMSI_COMPOSE_VAR}'\n", "single quotes do not stop interpolation (python-dotenv 0.21)"),
    ("c19-var-dash-no-colon.env", b"A=${EZMSI_UNSET-x}\n", "${VAR-x} (no colon): the name is 'EZMSI_UNSET-x'"),
    ("c20-var-question.env", b"A=${EZMSI_COMPOSE_VAR:?err}\n", "${VAR:?err} is not a recognised form: kept literally"),
    ("c21-var-unclosed.env", b"A=${EZMSI_COMPOSE_VAR\n", "unclosed ${ is kept literally"),
    ("c22-var-empty-name.env", b"A=x${}y\n", "${} is the variable named '' (unset): 'xy'"),
    ("c23-escapes-double.env", b'A="a\\nb\\tc\\\\d\\"e\\\'f"\n', "escapes \\n \\t \\\\ \\\" \\' decoded in double quotes"),
    ("c24-escapes-unknown.env", b'A="a\\x\\$b"\n', "unknown escapes (\\x, \\$) kept with their backslash"),
    ("c25-escapes-single.env", b"A='a\\nb\\'c\\\\d'\n", "single quotes decode only \\' and \\\\"),
    ("c26-unquoted-backslash.env", b"A=a\\nb\n", "unquoted: backslashes kept"),
    ("c27-export.env", b"export A=1\nexport\tB=2\n", "export prefix (space or tab) accepted"),
    ("c28-export-bare.env", b"export EZMSI_HOST_SET\n", "export + bare key"),
    ("c29-export-alone.env", b"export\n", "'export' alone is a bare key named export"),
    ("c30-spaces-around-eq.env", b"A = 1\nB= 2\nC =3\n", "spaces around '=' accepted and dropped"),
    ("c31-trailing-ws-unquoted.env", b"A=v  \t\n", "trailing whitespace of unquoted values stripped"),
    ("c32-trailing-ws-after-quote.env", b'A="v"  \n', "whitespace after the closing quote ignored"),
    ("c33-empty-values.env", b"A=\nB=\"\"\nC=''\nD= \n", "empty values, quoted or not"),
    ("c34-crlf.env", b'A=1\r\nB="x"\r\nC=y # c\r\n', "CRLF line ends"),
    ("c35-cr-only.env", b"A=1\rB=2\r", "old Mac CR line ends: two variables (universal newlines)"),
    ("c36-bom.env", BOM + b'A="1"\n', "UTF-8 BOM removed (utf-8-sig)"),
    ("c37-bom-partial.env", b"\xef\xbb", "the first two bytes of a BOM only: an empty file for utf-8-sig"),
    ("c38-multiline-double.env", b'A="line1\nline2"\nB=2\n', "a double-quoted value can span lines"),
    ("c39-unclosed-double.env", b'A="abc\nB=2\n', "unclosed double quote: line 1 skipped with a warning"),
    ("c40-unclosed-escaped-quote.env", b'A="abc\\"\nB=2\n', "\\\" counts as the closing quote when nothing else closes"),
    ("c41-single-quoted-key.env", b"'A B'=1\n'C'=2\n", "a key in single quotes may contain spaces"),
    ("c42-key-hash.env", b"FOO#bar\nK=1#x\n", "'#' ends an unquoted key: FOO is a bare key"),
    ("c43-bad-line-reporting.env", b"A=1\n\n\nBAD LINE\nB=2\n",
     "the warning names the line where the blank lines before the bad statement start (2, not 4)"),
    ("c44-key-with-space.env", b"FOO BAR=1\nOK=1\n", "a key with a space: skipped with a warning"),
    ("c45-lone-quotes.env", b"A=\"\nB='\nC=3\n", "lone opening quotes: both lines skipped"),
    ("c46-password-realistic.env", b'CONFLUENT_PASSWORD="p@ss#word$1" # the password\n',
     "realistic quoted password with '#' and '$' and a comment"),
    ("c47-unicode-ws.env", "A=x\u00a0#c\n\x1cB=1\n".encode(),
     "NBSP before '#' starts a comment; \\x1c (Python whitespace) before a key is skipped"),
    ("c48-invalid-utf8-continuation.env", b"A=\xc3\x28\n", "invalid UTF-8 (bad continuation): UnicodeDecodeError"),
    ("c49-invalid-utf8-truncated.env", b"A=1\nB=\xe2\x82", "truncated UTF-8 at end of file: unexpected end of data"),
    ("c50-invalid-utf8-after-bom.env", BOM + b"A=\xff\n", "invalid UTF-8 after a BOM: position counted after the BOM"),
    ("c51-invalid-utf8-third-byte.env", b"A=\xe2\x82(\n", "invalid third byte: 'bytes in position 2-3'"),
    ("c52-hash-in-quotes.env", b"A=\"#x\"\nB='a #b'\n", "'#' inside quotes is kept"),
    ("c53-value-only-hash.env", b"A=#x\n", "a value starting with '#' is kept"),
    ("c54-escaped-single-quote.env", b"A='it\\'s'\n", "\\' inside single quotes"),
    ("c55-double-backslash-quote.env", b'A="a\\\\"b"\n', "\\\\\" : the regex pairs the second backslash with the quote"),
    ("c56-nul-value.env", b"A=a\x00b\n", "NUL byte in a value"),
    ("c57-bare-key-comment.env", b"EZMSI_HOST_SET # c\n", "bare key followed by a comment"),
    ("c58-equals-in-value.env", b"A=b=c\n", "only the first '=' splits"),
    ("c59-empty-key.env", b"=x\nB=1\n", "no key: line skipped"),
    ("c60-duplicate-interp.env", b"A=1\nA=${A}2\n", "a key redefined from its own earlier value"),
    ("c61-nested-braces.env", b"A=${EZMSI_COMPOSE_VAR}}\nB=${${EZMSI_COMPOSE_VAR}}\n", "braces after/inside ${...}"),
    ("c62-indented.env", b"   A=1\n   # c\n\tB=2 # c\n", "indented keys and comments"),
    ("c63-single-spanning-comment.env", b"A='x\n# not a comment\ny'\n", "a quoted value swallows a comment line"),
    ("c64-vt-ff.env", b"A=x\x0b#c\nB=\x0cval\n", "\\v and \\f are whitespace for the comment rule and after '='"),
    ("c65-empty-single-quoted-key.env", b"''=1\nB=1\n", "empty quoted key: line skipped"),
    ("c66-lone-dollars.env", b"A=$\nB=${\nC=$}\n", "lone '$' and '${' kept"),
    ("c67-openmsi-template.env",
     b"# OpenMSIStream credentials\n"
     b"CONFLUENT_BOOTSTRAP_SERVERS=pkc-abc12.us-west-2.aws.confluent.cloud:9092  # broker\n"
     b"CONFLUENT_USERNAME='ABCDEFGHIJKLMNOP'\n"
     b"export CONFLUENT_PASSWORD=\"s3cr3t/Pass+word=\"\n",
     "a template written shell-style: comments, quotes, export"),
    ("c68-quote-inside-value.env", b"A=a\"b\"\nB=it's\n", "quotes not at the start of a value are kept"),
    ("c69-export-equals.env", b"export =1\nB=1\n", "'export' + space + '=': no key, line skipped"),
    ("c70-bare-unset.env", b"EZMSI_UNSET\nexport EZMSI_COMPOSE_EMPTY\n",
     "bare keys: unset -> null (the container does not get it); set but empty -> ''"),
    ("c71-multiline-then-bad.env", b'A="x\ny" z\nB=2\n', "error after a multi-line value: the rest of that line is skipped"),
    ("c72-trailing-backslash.env", b'A="abc\\\\"\n', "a value ending in an escaped backslash"),
    ("c73-unicode-ws-rstrip.env", "A=v\u3000\nB=\u2003w\n".encode(), "Unicode whitespace stripped at the end and after '='"),
]

README = """# docker-compose `env_file:` fixture corpus

Byte-exact files, created by `Tests/Oracles/compose_env_oracle.py --make-fixtures DIR`
(edit the table there, not the files). They add the dotenv rules that docker-compose
applies and `docker run --env-file` does not (quotes, inline comments, `${VAR}`,
escapes, `export`, ...). The Swift test `ComposeEnvDifferentialTests` runs every file here
and every file in `../envfiles/` through the real `docker-compose config` (1.29.2, with
python-dotenv 0.21.0) in the environment `ORACLE_ENV` of the oracle script:
`EZMSI_HOST_SET=hostvalue`, `EZMSI_COMPOSE_VAR=fromenv`, `EZMSI_COMPOSE_EMPTY=` (empty),
PATH, and DOCKER_HOST if set; nothing else.

"""


def make_fixtures(outdir):
    os.makedirs(outdir, exist_ok=True)
    lines = [README.rstrip("\n"), ""]
    for name, data, what in FIXTURES:
        with open(os.path.join(outdir, name), "wb") as fh:
            fh.write(data)
        lines.append(f"- `{name}`: {what}")
    with open(os.path.join(outdir, "README.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    with open(os.path.join(outdir, ".gitattributes"), "w", encoding="utf-8") as fh:
        fh.write("# byte-exact fixtures: never convert line endings\n*.env -text\n")


def compose_binary():
    return shutil.which("docker-compose") or "/usr/bin/docker-compose"


def oracle_env():
    env = dict(ORACLE_ENV)
    if os.environ.get("DOCKER_HOST"):
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return env


_WARNING = re.compile(r"Python-dotenv could not parse statement starting at line (\d+)")


def _undollar(s):
    # `config` writes every '$' as '$$' (serialize_string_escape_dollar); all '$' in its output come in pairs.
    return s.replace("$$", "$") if isinstance(s, str) else s


def run_cli(path):
    import yaml  # noqa: PLC0415 - only in the compose interpreter
    with tempfile.TemporaryDirectory(prefix="ezmsi-compose-oracle-") as project:
        with open(os.path.join(project, "docker-compose.yml"), "w", encoding="utf-8") as fh:
            # A JSON string is a valid YAML double-quoted scalar.
            fh.write('version: "3"\nservices:\n  s:\n    image: busybox\n    env_file: %s\n'
                     % json.dumps(os.path.abspath(path)))
        p = subprocess.run([compose_binary(), "-f", "docker-compose.yml", "config"], cwd=project,
                           env=oracle_env(), capture_output=True, timeout=120)
    stderr = p.stderr.decode("utf-8", "backslashreplace")
    result = {"exit": p.returncode, "env": None,
              "warnings": [int(m) for m in _WARNING.findall(stderr)], "error": None}
    if p.returncode == 0:
        doc = yaml.safe_load(p.stdout.decode("utf-8"))
        env = doc["services"]["s"].get("environment", {}) or {}
        result["env"] = {_undollar(str(k)): _undollar(v) for k, v in env.items()}
    else:
        tail = [line for line in stderr.splitlines() if line.strip()]
        result["error"] = tail[-1] if tail else ""
    return result


def run_direct(path):
    """compose's own functions, in a subprocess with the oracle environment."""
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--direct-one", os.path.abspath(path)],
                       env=oracle_env(), capture_output=True, timeout=120)
    if p.returncode != 0:
        return {"env": None, "error": "direct run failed: " + p.stderr.decode("utf-8", "backslashreplace")[-300:]}
    return json.loads(p.stdout)


def direct_one(path):
    import logging  # noqa: PLC0415
    logging.disable(logging.CRITICAL)
    from compose.config.config import resolve_env_var  # noqa: PLC0415
    from compose.config.environment import Environment, env_vars_from_file  # noqa: PLC0415
    try:
        values = env_vars_from_file(path)
    except Exception as e:  # noqa: BLE001 - report what compose raises
        return {"env": None, "error": "%s: %s" % (type(e).__name__, e)}
    environment = Environment(os.environ)
    return {"env": dict(resolve_env_var(k, v, environment) for k, v in values.items()), "error": None}


def observe(path, direct):
    res = run_cli(path)
    if not direct:
        return res
    res["direct"] = run_direct(path)
    res["direct_agrees"] = (res["direct"]["env"] == res["env"]
                            and (res["error"] is None) == (res["direct"]["error"] is None)
                            and (res["error"] is None or res["error"] == res["direct"]["error"]))
    return res


def _ensure_compose_python():
    try:
        import compose  # noqa: F401, PLC0415
        import yaml  # noqa: F401, PLC0415
        return
    except ImportError:
        pass
    with open(compose_binary(), "rb") as fh:
        first = fh.readline().decode("utf-8", "replace").strip()
    if first.startswith("#!") and "python" in first:
        interpreter = first[2:].split()[0]
        if os.path.realpath(interpreter) != os.path.realpath(sys.executable):
            os.execv(interpreter, [interpreter, os.path.abspath(__file__)] + sys.argv[1:])
    sys.exit("compose_env_oracle: no python with the compose and yaml modules (is docker-compose 1.x installed?)")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-fixtures", metavar="DIR")
    ap.add_argument("--direct-one", metavar="FILE", help=argparse.SUPPRESS)
    ap.add_argument("--basename", action="store_true", help="key results by file name")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--print-env", action="store_true", help="print the environment docker-compose runs with, as JSON")
    ap.add_argument("--direct", action="store_true",
                    help="also run compose's functions in-process and say whether they agree with the CLI")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args(argv)
    if args.make_fixtures:
        make_fixtures(args.make_fixtures)
        return 0
    if args.print_env:
        json.dump(oracle_env(), sys.stdout, ensure_ascii=True, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    _ensure_compose_python()
    if args.direct_one:
        json.dump(direct_one(args.direct_one), sys.stdout, ensure_ascii=True)
        return 0
    if not args.files:
        ap.error("no FILE given")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda p: observe(p, args.direct), args.files))
    out = {(os.path.basename(p) if args.basename else p): r for p, r in zip(args.files, results)}
    json.dump(out, sys.stdout, ensure_ascii=True, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
