#!/usr/bin/env python3
"""Docker ``--env-file`` oracle helper for ezmsi's tests.

This is NOT a re-implementation of docker's env-file parser: the real oracle
is ``docker run --env-file`` itself.  This script (a) (re)creates the
byte-exact fixture corpus in ``Tests/Fixtures/envfiles/`` and (b) runs files
through the real docker and prints what the container actually received.

Usage
-----
``envfile_oracle.py --make-fixtures DIR``
    Write the ``NN-description.env`` fixtures and ``README.md`` into DIR.

``envfile_oracle.py [--image IMG] [--basename] FILE...``
    For each FILE run (DOCKER_HOST as in the environment; the harness uses
    ``unix:///tmp/ezmsi-ci/docker.sock``)::

        EZMSI_HOST_SET=hostvalue docker run --rm --network none \\
            --env-file FILE --entrypoint /bin/cat IMG /proc/self/environ

    and print ONE JSON object ``{FILE: {"exit": int, "stderr": str,
    "env": {KEY: VALUE}}}``.  ``/proc/self/environ`` of a directly exec'd
    ``cat`` is exactly the environment runc passed to the process (a shell
    would add SHLVL/PWD/_).  Keys that an empty env file also yields with the
    same value (the image's PATH/HOME/TZ/LANG..., plus the per-container
    HOSTNAME) are left out unless the env file names them.  EZMSI_HOST_SET is
    always exported as ``hostvalue`` and EZMSI_HOST_UNSET always removed, so
    the bare-key fixtures behave the same everywhere.
"""

import argparse
import json
import os
import subprocess
import sys

BOM = b"\xef\xbb\xbf"


def _long_line(total, key=b"LONG"):
    """A KEY=VALUE line of exactly `total` bytes (excluding the newline)."""
    head = key + b"="
    return head + b"x" * (total - len(head))


# (file name, bytes, what it tests).  Bytes are exact.
FIXTURES = [
    ("01-crlf.env", b"CRLF=yes\r\nSECOND=two\r\n",
     "CRLF line endings: one trailing \\r per line is dropped by bufio.ScanLines"),
    ("02-lone-cr-midline.env", b"A=1\rB=2\n",
     "lone \\r in the middle of a line stays in the value (one var A='1\\rB=2')"),
    ("03-bom-line1.env", BOM + b"BOM1=yes\n",
     "UTF-8 BOM on line 1 is removed"),
    ("04-bom-twice.env", BOM + BOM + b"BOM2=yes\n",
     "two BOMs on line 1: only one removed, the second becomes part of the key"),
    ("05-bom-line2.env", b"FIRST=1\n" + BOM + b"BOM_L2=yes\n",
     "BOM at the start of line 2 is NOT removed (part of the key)"),
    ("06-invalid-utf8-line3.env", b"L1=a\nL2=b\nL3=a\xffb\nL4=d\n",
     "invalid UTF-8 (0xFF) on line 3 -> error naming line 3"),
    ("07-export-prefix.env", b"export X=1\n",
     "shell-style `export X=1` -> key contains whitespace error"),
    ("08-space-before-eq.env", b"FOO =1\n",
     "space between key and '=' -> key contains whitespace error"),
    ("09-space-after-eq.env", b"FOO= lead\n",
     "space after '=' is kept in the value (' lead')"),
    ("10-empty-key.env", b"=novar\n",
     "line starting with '=' -> no variable name error"),
    ("11-double-eq.env", b"EQ==x=y\n",
     "split at first '=': key EQ, value '=x=y'"),
    ("12-double-quotes.env", b'DQ="a b"\n',
     "double quotes are NOT stripped (value '\"a b\"')"),
    ("13-single-quotes.env", b"SQ='x y'\n",
     "single quotes are NOT stripped"),
    ("14-inline-hash.env", b"INLINE=a # not comment\n",
     "no inline comments: value 'a # not comment'"),
    ("15-indented-comment.env", b"   # indented comment\n\t#tab comment\nAFTER_COMMENT=1\n",
     "'#' after leading whitespace is still a full-line comment"),
    ("16-leading-tab-space.env", b"\t  LEAD_TAB=1\n",
     "leading tab/spaces before the key are trimmed"),
    ("17-leading-nbsp.env", "\u00a0NBSP_LEAD=1\n".encode(),
     "leading U+00A0 (NBSP) is trimmed (Go unicode.IsSpace)"),
    ("18-leading-ideographic-space.env", "\u3000IDEO_LEAD=1\n".encode(),
     "leading U+3000 (ideographic space) is trimmed"),
    ("19-trailing-ws.env", b"TRAIL=val  \t\n",
     "trailing spaces/tab are kept in the value"),
    ("20-empty-value.env", b"EMPTY=\n",
     "KEY= gives an empty value (variable present)"),
    ("21-bare-key-host-set.env", b"EZMSI_HOST_SET\n",
     "bare key set on the docker CLI's host env -> takes the host value (hostvalue)"),
    ("22-bare-key-host-unset.env", b"EZMSI_HOST_UNSET\n",
     "bare key unset on the host -> silently dropped, no error"),
    ("23-dash-dot-key.env", b"weird-name.x=1\n",
     "key with '-' and '.' accepted as-is"),
    ("24-digit-start-key.env", b"1BAD=2\n",
     "key starting with a digit accepted as-is"),
    ("25-unicode-key.env", "CL\u00c9_\u00dcBER=1\n".encode(),
     "non-ASCII key accepted"),
    ("26-line-65535.env", _long_line(65535) + b"\n",
     "line of exactly 65535 bytes before \\n: accepted"),
    ("27-line-65536.env", _long_line(65536) + b"\n",
     "line of 65536 bytes before \\n: bufio.Scanner token too long error"),
    ("28-no-final-newline.env", b"FIRST=1\nNOEOL=last",
     "last line without trailing newline is still read"),
    ("29-empty.env", b"",
     "empty file: no variables, no error"),
    ("30-only-comments.env", b"# a comment\n#another\n\n# NOT_SET=1\n",
     "only comments/blank lines: no variables"),
    ("31-tab-in-key.env", b"TAB\tKEY=1\n",
     "tab inside the key -> key contains whitespace error"),
    ("32-duplicate-key.env", b"DUP=first\nDUP=second\n",
     "duplicate key: last one wins in the container"),
    ("33-openmsistream-config-file-dir.env", b"OPENMSISTREAM_CONFIG_FILE_DIR=/x\n",
     "sets OPENMSISTREAM_CONFIG_FILE_DIR (changes --config resolution in the image)"),
    ("34-confluent-password-quoted.env", b'CONFLUENT_PASSWORD="secret"\n',
     "quoted password: the quotes become part of the secret"),
    ("35-dollar-other.env", b"OTHER=o\nREF=$OTHER\nREF2=${OTHER}\n",
     "no $VAR interpolation: REF='$OTHER', REF2='${OTHER}'"),
    ("36-percent.env", b"PCT=ab%cd\n",
     "'%' passes through unchanged"),
    ("37-nul-in-value.env", b"NUL=a\x00b\n",
     "NUL byte inside a value (valid UTF-8; see observed.json for what docker does)"),
    ("38-hash-after-key-no-eq.env", b"FOO#bar\n",
     "`FOO#bar` has no '=': bare key 'FOO#bar' looked up on host, unset -> dropped"),
    ("39-lowercase-keys.env", b"lower=1\nMixed_Case=2\n",
     "lowercase / mixed-case keys accepted, case preserved"),
    ("40-good-openmsi.env",
     b"# OpenMSIStream credentials for the ezmsi container\n"
     b"CONFLUENT_BOOTSTRAP_SERVERS=pkc-abc12.us-west-2.aws.confluent.cloud:9092\n"
     b"CONFLUENT_USERNAME=ABCDEFGHIJKLMNOP\n"
     b"CONFLUENT_PASSWORD=s3cr3t/Pass+word=\n"
     b"\n"
     b"KAFKA_TEST_CLUSTER_BOOTSTRAP_SERVERS=localhost:9092\n",
     "realistic good openmsi.env (value containing '=' and '/+')"),
    ("41-blank-and-ws-lines.env", b"\n\n   \n\t\nA=1\n\n",
     "blank and whitespace-only lines are skipped"),
    ("42-indented-empty-key.env", b"  =x\n",
     "leading whitespace then '=' -> no variable name error (line shown trimmed)"),
    ("43-bom-only.env", BOM,
     "file containing only a BOM: no variables, no error"),
    ("44-bom-then-comment.env", BOM + b"# comment\nX=1\n",
     "BOM removed before the comment check on line 1"),
    ("45-bare-key-trailing-space.env", b"EZMSI_HOST_SET \n",
     "bare key with trailing space -> whitespace error (checked before lookup)"),
    ("46-nbsp-inside-key.env", "NB\u00a0KEY=1\n".encode(),
     "U+00A0 inside the key is NOT rejected (only ' ' and '\\t' count as whitespace there)"),
    ("47-key-trailing-nbsp.env", "KEYNB\u00a0=1\n".encode(),
     "key ending in U+00A0 before '=' is accepted, NBSP stays in the key"),
    ("48-double-cr.env", b"DCR=v\r\r\n",
     "CR CR LF: only one \\r dropped, value 'v\\r'"),
    ("49-old-mac-cr-only.env", b"MAC1=a\rMAC2=b\r",
     "CR-only line endings: one line; final \\r at EOF dropped; MAC1='a\\rMAC2=b'"),
    ("50-override-path.env", b"PATH=/custom/bin\n",
     "PATH from the env file overrides the image's PATH"),
    ("51-bare-home.env", b"HOME\n",
     "bare HOME takes the docker CLI host's HOME, overriding the image's HOME"),
    ("52-vertical-tab-in-key.env", b"VT\x0bKEY=1\n",
     "\\v (0x0B) inside the key is not rejected"),
    ("53-unicode-value.env", "UNI_VAL=Gr\u00fc\u00dfe \u65e5\u672c \U0001F600\n".encode(),
     "non-ASCII UTF-8 value passes through byte-exact"),
    ("54-backslash-escapes.env", b"ESC=a\\nb\\tc\\\\\n",
     "no escape processing: backslashes kept literally"),
    ("55-quoted-hash.env", b'QH="a#b" # c\n',
     "quotes and '#' all kept: value '\"a#b\" # c'"),
    ("56-invalid-utf8-line1-after-bom.env", BOM + b"\xc3\x28=1\n",
     "invalid UTF-8 on line 1 (checked before the BOM is removed)"),
    ("57-surrogate-utf8.env", b"SUR=\xed\xa0\x80\n",
     "UTF-8-encoded surrogate (ED A0 80) is invalid UTF-8 for Go -> error"),
    ("58-error-after-good-lines.env", b"GOOD=1\nALSO_GOOD=2\nBAD KEY=3\n",
     "one bad line fails the whole file (exit 125, nothing started)"),
    ("59-equals-only.env", b"=\n",
     "lone '=' -> no variable name error"),
    ("60-crlf-bare-key.env", b"EZMSI_HOST_SET\r\n",
     "bare key with CRLF: \\r dropped, host value used"),
]


README_NOTES = r"""
## observed.json

Recorded with docker CLI 28.2.2 against Engine 20.10.24 (runc), image `openmsi/openmsistream:latest`
(the test fixture image: Entrypoint `bash`, User `openmsi`, Env PATH and TZ), from the repo root:

    DOCKER_HOST=unix:///tmp/ezmsi-ci/docker.sock python3 Tests/Oracles/envfile_oracle.py --basename Tests/Fixtures/envfiles/*.env

which runs, per file, `EZMSI_HOST_SET=hostvalue docker run --rm --network none --env-file FILE
--entrypoint /bin/cat openmsi/openmsistream:latest /proc/self/environ`. `env` leaves out the image's own
PATH/HOME/TZ and the per-container HOSTNAME unless the file names or changes them. `stderr` contains the relative
path as given (`invalid env file (<path as given>): ...`). With `-c 'env -0'` instead (bash as the entrypoint)
the output also has PWD, SHLVL=0 and `_=/usr/bin/env`, which bash adds.

Things to note:
- Every parse error exits 125 *before* anything is created, and the whole file fails (58). The message is
  `docker: invalid env file (<path as given>): <detail>` + a blank line + `Run 'docker run --help' for more information`.
- 37 (NUL in a value): the CLI accepts it. The **daemon/runc** rejects it at container start, exit 125:
  `docker: Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed:
  unable to start container process: error during container init: environment variable value can't contain
  null(\x00): "NUL=a\x00b": unknown`. No container is left behind with `--rm`.
- 32 (duplicate key): `docker inspect` Config.Env holds both `DUP=first` and `DUP=second`; the process sees `second`.
- 04/05: a second BOM or a BOM on line 2 silently becomes part of the key (`\ufeffBOM2`); no error.
- 46/47/52: only ' ' and '\t' make a key invalid; U+00A0 and \v inside or at the end of a key are accepted and
  passed on.
- 56: the UTF-8 check runs on the raw line before the BOM is removed; the byte list in the message includes the BOM
  (`[239 187 191 195 40 61 49]`). 57: Go rejects UTF-8-encoded surrogates (ED A0 80).
- 51: a bare `HOME` line replaced the image's HOME (/home/openmsi) with the CLI host's HOME (here /root).
- 49: CR-only line endings give a single variable; the final `\r` at EOF is dropped like a CRLF.
"""


def make_fixtures(outdir):
    os.makedirs(outdir, exist_ok=True)
    lines = ["# Docker `--env-file` fixture corpus",
             "",
             "Byte-exact files, created by `Tests/Oracles/envfile_oracle.py --make-fixtures DIR`",
             "(edit the table there, not the files). One rule per file. Run them with",
             "`EZMSI_HOST_SET=hostvalue` exported and `EZMSI_HOST_UNSET` unset.",
             "`observed.json` records what the real docker CLI/daemon did (documentation only;",
             "the Swift tests re-run docker live).",
             ""]
    for name, data, what in FIXTURES:
        with open(os.path.join(outdir, name), "wb") as fh:
            fh.write(data)
        lines.append(f"- `{name}`: {what}")
    with open(os.path.join(outdir, "README.md"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n" + README_NOTES)
    with open(os.path.join(outdir, ".gitattributes"), "w", encoding="utf-8") as fh:
        fh.write("# byte-exact fixtures: never convert line endings\n*.env -text\n")


def _docker_env():
    env = dict(os.environ)
    env["EZMSI_HOST_SET"] = "hostvalue"
    env.pop("EZMSI_HOST_UNSET", None)
    return env


def run_one(path, image):
    cmd = ["docker", "run", "--rm", "--network", "none", "--env-file", path,
           "--entrypoint", "/bin/cat", image, "/proc/self/environ"]
    p = subprocess.run(cmd, capture_output=True, env=_docker_env(), timeout=300)
    env = {}
    if p.returncode == 0:
        for item in p.stdout.split(b"\x00"):
            if not item:
                continue
            k, _, v = item.partition(b"=")
            env[k.decode("utf-8", "backslashreplace")] = v.decode("utf-8", "backslashreplace")
    return {"exit": p.returncode, "stderr": p.stderr.decode("utf-8", "backslashreplace"), "env": env}


def _named_keys(path):
    keys = set()
    with open(path, "rb") as fh:
        for line in fh.read().splitlines():
            k = line.strip().split(b"=", 1)[0]
            keys.add(k.decode("utf-8", "backslashreplace"))
    return keys


def observe(paths, image, basename):
    empty = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fixtures", "envfiles", "29-empty.env")
    if not os.path.exists(empty):
        empty = "/dev/null"
    baseline = run_one(empty, image)["env"]
    out = {}
    for path in paths:
        res = run_one(path, image)
        named = _named_keys(path)
        res["env"] = {k: v for k, v in res["env"].items()
                      if k in named or (k not in baseline) or (k != "HOSTNAME" and baseline[k] != v)}
        out[os.path.basename(path) if basename else path] = res
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-fixtures", metavar="DIR")
    ap.add_argument("--image", default="openmsi/openmsistream:latest")
    ap.add_argument("--basename", action="store_true", help="key results by file name")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args(argv)
    if args.make_fixtures:
        make_fixtures(args.make_fixtures)
        return 0
    if not args.files:
        ap.error("no FILE given")
    json.dump(observe(args.files, args.image, args.basename), sys.stdout, ensure_ascii=True, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
