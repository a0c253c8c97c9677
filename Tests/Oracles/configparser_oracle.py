#!/usr/bin/env python3
"""Ground-truth oracle for ezmsi's Swift re-implementation of Python's
``configparser.ConfigParser()`` with ALL defaults, exactly as OpenMSIStream
reads its config files::

    cp = configparser.ConfigParser()
    cp.read(path)

Encoding: ``ConfigParser.read()`` without ``encoding=`` uses the *locale*
encoding (``locale.getpreferredencoding(False)``).  The OpenMSIStream images
set ``LANG=C.UTF-8``, so in the container that is UTF-8 (plain 'utf-8', NOT
'utf-8-sig': a BOM is kept as U+FEFF).  To make this oracle independent of
the locale of whoever runs it, we always call ``cp.read(path,
encoding='utf-8')``, which is what the container does.

Usage
-----
``configparser_oracle.py dump FILE...``
    Prints ONE JSON object ``{"<path as given>": RESULT, ...}`` to stdout.

``configparser_oracle.py generate OUTDIR --seed N --count K``
    Writes K deterministically mutated configs ``OUTDIR/mut-0000.config`` ...
    (``random.Random(N)``, derived from the sample configs), copies the
    original samples as ``OUTDIR/sample-<name>.config``, and writes
    ``OUTDIR/expected.json`` = the dump of all of them, keyed by FILE NAME
    (basename, e.g. ``"mut-0007.config"``), plus ``OUTDIR/manifest.json``
    (file name -> list of mutation names applied; documentation only).

RESULT shape::

    {"error": null | {"type": "<exception class name>", "line": <int|null>},
     "sections": [{"name": "<as written>", "options": [OPTION, ...]}, ...],
     "defaults": [OPTION, ...]}
    OPTION = {"key": "<lower-cased key>",
              "raw": "<cp.get(s, k, raw=True)>",
              "value": "<cp.get(s, k)>" | null,
              "interpolationError": null | "<exception class name>"}

* ``sections`` in file order (``cp._sections`` insertion order), DEFAULT
  excluded; options = the section's OWN keys (``cp._sections[name]`` order),
  i.e. keys inherited from [DEFAULT] are not listed; ``raw``/``value`` come
  from ``cp.get`` (an own key always shadows a DEFAULT key of the same name).
* ``defaults`` = the keys of ``[DEFAULT]`` (``cp._defaults`` order).
* On any read error ``sections`` and ``defaults`` are ``[]``.
* ``error.line``: ParsingError -> ``e.errors[0][0]`` (first bad line; the
  error accumulates and is raised at EOF); MissingSectionHeaderError /
  DuplicateSectionError / DuplicateOptionError -> ``e.lineno`` (raised
  immediately, so such an error on a later line wins over an earlier
  accumulated ParsingError); UnicodeDecodeError -> 1-based line of the first
  invalid byte, lines counted like Python's universal-newline text mode
  (``\\n``, ``\\r\\n`` and a lone ``\\r`` each end a line).
* A file that cannot be opened (missing/unreadable) is silently skipped by
  ``read()``: RESULT has ``error: null`` and no sections (Python behaviour).
"""

import argparse
import configparser
import glob
import json
import os
import random
import shutil
import sys

# Copies of ../shared/samples kept in the repository, so CI needs nothing outside it.
SAMPLES_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fixtures", "samples")


# --------------------------------------------------------------------------
# dump
# --------------------------------------------------------------------------

def _decode_error_line(path):
    """1-based line (universal newlines) holding the first invalid byte."""
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        prefix = data[: exc.start].decode("utf-8")
    return prefix.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1


def _option(cp, section, key):
    raw = cp.get(section, key, raw=True)
    try:
        value = cp.get(section, key)
        ierr = None
    except configparser.Error as exc:  # Interpolation*Error
        value = None
        ierr = type(exc).__name__
    return {"key": key, "raw": raw, "value": value, "interpolationError": ierr}


def parse_file(path):
    cp = configparser.ConfigParser()
    error = None
    try:
        cp.read(path, encoding="utf-8")
    except UnicodeDecodeError as exc:
        error = {"type": type(exc).__name__, "line": _decode_error_line(path)}
    except configparser.MissingSectionHeaderError as exc:  # subclass of ParsingError
        error = {"type": type(exc).__name__, "line": exc.lineno}
    except (configparser.DuplicateSectionError, configparser.DuplicateOptionError) as exc:
        error = {"type": type(exc).__name__, "line": exc.lineno}
    except configparser.ParsingError as exc:
        error = {"type": type(exc).__name__, "line": exc.errors[0][0] if exc.errors else None}
    if error is not None:
        return {"error": error, "sections": [], "defaults": []}
    sections = []
    for name in cp._sections:  # file order, DEFAULT excluded
        opts = [_option(cp, name, key) for key in cp._sections[name]]
        sections.append({"name": name, "options": opts})
    defaults = [_option(cp, cp.default_section, key) for key in cp._defaults]
    return {"error": None, "sections": sections, "defaults": defaults}


def dump(paths):
    return {p: parse_file(p) for p in paths}


def _write_json(obj, fh):
    json.dump(obj, fh, ensure_ascii=True, indent=1)
    fh.write("\n")


# --------------------------------------------------------------------------
# generate: mutation engine
# --------------------------------------------------------------------------
# A document is a list of str lines INCLUDING their terminators.  Raw invalid
# bytes are carried as lone surrogates (errors='surrogateescape') and the
# file is written with .encode('utf-8', 'surrogateescape').

def sample_paths():
    paths = sorted(glob.glob(os.path.join(SAMPLES_ROOT, "openmsistream-configs", "*.config")))
    paths.append(os.path.join(SAMPLES_ROOT, "ezopenmsistream", "config.config"))
    paths.append(os.path.join(SAMPLES_ROOT, "ezopenmsistream", "custom_image", "config.config"))
    return paths


def sample_copy_name(path):
    rel = os.path.relpath(path, SAMPLES_ROOT)
    parts = rel.split(os.sep)
    if parts[0] == "openmsistream-configs":
        return "sample-" + parts[-1]
    return "sample-" + "-".join(parts)  # sample-ezopenmsistream-config.config, ...


def load_doc(path):
    with open(path, "rb") as fh:
        text = fh.read().decode("utf-8", "surrogateescape")
    return text.splitlines(keepends=True)


def _body(line):
    return line.rstrip("\r\n")


def _eol(line):
    return line[len(_body(line)):]


def _is_header(line):
    s = _body(line).strip()
    return s.startswith("[") and "]" in s[1:]


def _is_comment(line):
    s = _body(line).strip()
    return s.startswith("#") or s.startswith(";")


def _is_option(line):
    s = _body(line).strip()
    return bool(s) and not _is_header(line) and not _is_comment(line) and not line[:1].isspace() \
        and ("=" in s or ":" in s)


def header_idx(doc):
    return [i for i, l in enumerate(doc) if _is_header(l)]


def option_idx(doc):
    return [i for i, l in enumerate(doc) if _is_option(l)]


def _split_opt(line):
    body = _body(line)
    cut = min(p for p in (body.find("="), body.find(":")) if p >= 0)
    return body[:cut], body[cut], body[cut + 1:]


def _ensure_nl(doc):
    if doc and not doc[-1].endswith(("\n", "\r")):
        doc[-1] += "\n"


def _section_of(doc, idx):
    """(header index or None, end index exclusive) of the section around idx."""
    hs = header_idx(doc)
    start = None
    for h in hs:
        if h <= idx:
            start = h
    end = len(doc)
    for h in hs:
        if h > idx:
            end = h
            break
    return start, end


def _pick_opt(rng, doc):
    opts = option_idx(doc)
    return rng.choice(opts) if opts else None


def _insert_after_opt(rng, doc, lines):
    i = _pick_opt(rng, doc)
    if i is None:
        doc.extend(lines)
        return
    doc[i + 1:i + 1] = lines


def _set_value(doc, i, value):
    k, d, _ = _split_opt(doc[i])
    doc[i] = f"{k.rstrip()} {d} {value}" + (_eol(doc[i]) or "\n")


# Each mutation: (doc, rng) -> doc (may mutate in place).  Byte-level
# mutations (BOM, CRLF, invalid UTF-8, no final newline) are flagged and
# applied by name in `apply_bytes` after the line mutations.

def m_bom(doc, rng):
    if doc:
        doc[0] = "\ufeff" + doc[0]
    else:
        doc.append("\ufeff")
    if rng.random() < 0.2:  # BOM twice
        doc[0] = "\ufeff" + doc[0]
    return doc


def m_remove_first_header(doc, rng):
    hs = header_idx(doc)
    if hs:
        del doc[hs[0]]
        if rng.random() < 0.3:  # also a leading comment / blank so the error line shifts
            doc[0:0] = rng.choice([["# leading comment\n"], ["\n", "\n"], ["; c\n", "  \n"]])
    return doc


def m_duplicate_section(doc, rng):
    hs = header_idx(doc)
    if not hs:
        return doc
    h = rng.choice(hs)
    name = _body(doc[h])
    choice = rng.random()
    if choice < 0.5:
        _ensure_nl(doc)
        doc.extend(["\n", name.strip() + "\n", "extra.key = 1\n"])
    elif choice < 0.8 and len(hs) > 1:
        other = rng.choice([x for x in hs if x != h])
        doc[other] = name.strip() + _eol(doc[other])
    else:  # same name but different spacing/case -> NOT a duplicate
        variant = rng.choice(["[ %s ]", "[%s ]", "[%s]  # dup?"]) % name.strip()[1:-1] \
            if rng.random() < 0.5 else "[" + name.strip()[1:-1].upper() + "]"
        _ensure_nl(doc)
        doc.extend(["\n", variant + "\n", "extra.key = 2\n"])
    return doc


def m_duplicate_key(doc, rng):
    i = _pick_opt(rng, doc)
    if i is None:
        return doc
    k, d, v = _split_opt(doc[i])
    key = k.strip()
    mode = rng.random()
    if mode < 0.35:
        newkey = key
    elif mode < 0.7:
        newkey = "".join(c.upper() if rng.random() < 0.5 else c for c in key)
        if newkey == key:
            newkey = key[:1].upper() + key[1:]
    else:
        newkey = key.upper()
    _, end = _section_of(doc, i)
    pos = rng.randint(i + 1, end)
    doc.insert(pos, f"{newkey} = dup{v.strip()[:5]}\n")
    return doc


def m_key_without_delimiter(doc, rng):
    _insert_after_opt(rng, doc, [rng.choice(["enable.idempotence\n", "some_flag\n",
                                             "  bare_indented_flag\n", "true\n",
                                             "sasl.password secret\n"])])
    return doc


def m_colon(doc, rng):
    for _ in range(rng.randint(1, 3)):
        i = _pick_opt(rng, doc)
        if i is None:
            break
        k, d, v = _split_opt(doc[i])
        sep = rng.choice([": ", ":", " : ", " :", ":\t"])
        doc[i] = k.rstrip() + sep + v.strip() + (_eol(doc[i]) or "\n")
    return doc


def m_bare_percent(doc, rng):
    i = _pick_opt(rng, doc)
    if i is not None:
        _set_value(doc, i, rng.choice(["ab%cd", "100%", "%", "pa%ss", "%d", "%(", "%(x",
                                       "%(lower)d", "50% off %%", "%%%"]))
    return doc


def m_double_percent(doc, rng):
    i = _pick_opt(rng, doc)
    if i is not None:
        _set_value(doc, i, rng.choice(["ab%%cd", "100%%", "%%", "%%(notavar)s", "a%%%%b"]))
    return doc


def m_interpolation(doc, rng):
    i = _pick_opt(rng, doc)
    if i is None:
        return doc
    kind = rng.choice(["valid", "valid_case", "missing", "chain", "self", "default_ref",
                       "from_sibling", "multi", "deep_ok", "nested_pct"])
    if kind == "valid":
        lines = ["base.dir = /data\n", "full.path = %(base.dir)s/files\n"]
    elif kind == "valid_case":
        lines = ["Base.Dir = /data\n", "full.path = %(BASE.DIR)s/x\n"]
    elif kind == "missing":
        lines = ["full.path = %(no.such.key)s/x\n"]
    elif kind == "chain":
        lines = ["a1 = x\n", "a2 = %(a1)s-y\n", "a3 = %(a2)s-z\n"]
    elif kind == "self":
        lines = ["loop = %(loop)s\n"]
    elif kind == "default_ref":
        hs = header_idx(doc)
        if hs:
            doc[hs[0]:hs[0]] = ["[DEFAULT]\n", "root = /srv\n", "\n"]
            i = _pick_opt(rng, doc)
        lines = ["where = %(root)s/x\n"]
    elif kind == "from_sibling":
        k, _, _ = _split_opt(doc[i])
        lines = [f"copy.of = [%({k.strip()})s]\n"]
    elif kind == "multi":
        lines = ["m1 = a\n", "m2 = %(m1)s%(m1)s %% %(m1)s\n"]
    elif kind == "deep_ok":
        lines = [f"d{n} = %(d{n + 1})s\n" for n in range(rng.choice([9, 10, 11]))]
        lines.append(f"d{len(lines)} = end%%\n" if rng.random() < 0.5 else f"d{len(lines)} = end\n")
    else:  # value with % inside the referenced value
        lines = ["pct = 5%%\n", "uses = %(pct)s\n"]
    doc[i + 1:i + 1] = lines
    return doc


def m_continuation(doc, rng):
    i = _pick_opt(rng, doc)
    if i is None:
        return doc
    kind = rng.choice(["simple", "blank_between", "blank_then_indent_end", "comment_inside",
                       "after_empty", "deeper_less", "whitespace_only_line", "tabs"])
    if kind == "simple":
        lines = ["    more\n", "  even more\n"]
    elif kind == "blank_between":
        lines = ["\n", "   after.blank\n", "\n", "\n", "   after.two.blanks\n"]
    elif kind == "blank_then_indent_end":
        _, end = _section_of(doc, i)
        # place a blank and an indented line at the end of the section
        while end > i + 1 and not _body(doc[end - 1]).strip():
            end -= 1
        doc[end:end] = ["\n", "   tail.continuation\n", "\n"]
        return doc
    elif kind == "comment_inside":
        lines = ["  first\n", "  # indented comment inside value\n", "; flush comment\n", "  second\n"]
    elif kind == "after_empty":
        k, d, _ = _split_opt(doc[i])
        doc[i] = f"{k.rstrip()} {d}" + (_eol(doc[i]) or "\n")
        lines = ["  continued.after.empty\n"]
    elif kind == "deeper_less":
        lines = ["        deep\n", " shallow\n", "\t tabbed\n"]
    elif kind == "whitespace_only_line":
        lines = ["   \n", "  after.ws.line\n", " \t \n"]
    else:
        lines = ["\tcont.tab\n"]
    doc[i + 1:i + 1] = lines
    return doc


def m_indented_first_key(doc, rng):
    hs = header_idx(doc)
    if not hs:
        return doc
    h = rng.choice(hs)
    if h + 1 < len(doc) and _is_option(doc[h + 1]):
        ind = rng.choice(["  ", "    ", "\t", " "])
        doc[h + 1] = ind + doc[h + 1]
        if rng.random() < 0.5 and h + 2 < len(doc) and _is_option(doc[h + 2]):
            doc[h + 2] = ind[:-1] + doc[h + 2] if len(ind) > 1 else doc[h + 2]
            if rng.random() < 0.5:
                doc[h + 2] = ind + " " + doc[h + 2].lstrip()  # deeper -> continuation
    return doc


def m_inline_comment(doc, rng):
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.25:
            hs = header_idx(doc)
            if hs:
                h = rng.choice(hs)
                doc[h] = _body(doc[h]) + rng.choice([" # header comment", " ; c", "#x"]) + (_eol(doc[h]) or "\n")
            continue
        i = _pick_opt(rng, doc)
        if i is None:
            break
        doc[i] = _body(doc[i]) + rng.choice([" # comment", " ; comment", "#nospace", ";x",
                                            "\t# tab comment", " #"]) + (_eol(doc[i]) or "\n")
    return doc


def m_indented_comment(doc, rng):
    for _ in range(rng.randint(1, 3)):
        pos = rng.randint(0, len(doc))
        doc.insert(pos, rng.choice(["   # indented comment\n", "\t; tab comment\n", "#\n", ";\n",
                                    "  #key = value\n", "\u3000# ideographic-space comment\n"]))
    return doc


def m_default_section(doc, rng):
    block = ["[DEFAULT]\n"] + rng.sample(["linger.ms = 5\n", "shared.key = from-default\n",
                                          "client.id = default-client\n", "Mixed.Case = X\n",
                                          "pct.ok = 1%%\n", "ref = %(shared.key)s!\n"],
                                         rng.randint(1, 4)) + ["\n"]
    hs = header_idx(doc)
    where = rng.random()
    if where < 0.5 or not hs:
        pos = 0
    elif where < 0.8:
        pos = rng.choice(hs)
    else:
        _ensure_nl(doc)
        pos = len(doc)
    doc[pos:pos] = block
    if rng.random() < 0.2:
        _ensure_nl(doc)
        doc.extend(["[DEFAULT]\n", rng.choice(["second.default = 2\n", "linger.ms = 6\n"])])
    if rng.random() < 0.15:
        _ensure_nl(doc)
        doc.extend(["[default]\n", "lowercase.default = yes\n"])
    return doc


def m_section_case(doc, rng):
    hs = header_idx(doc)
    if not hs:
        return doc
    h = rng.choice(hs)
    name = _body(doc[h]).strip()[1:-1]
    if rng.random() < 0.6:
        doc[h] = "[" + name[:1].upper() + name[1:] + "]" + (_eol(doc[h]) or "\n")
    else:
        _ensure_nl(doc)
        doc.extend(["[" + name.capitalize() + "]\n", "case.variant = 1\n"])
    return doc


def m_unknown_section(doc, rng):
    block = [rng.choice(["[server]\n", "[kafkacrypto]\n", "[s3]\n", "[heartbeat]\n", "[misc stuff]\n"]),
             "authorizer.class.name = kafka.security.authorizer.AclAuthorizer\n"]
    if rng.random() < 0.5:
        pos = len(doc)
        _ensure_nl(doc)
    else:
        hs = header_idx(doc)
        pos = rng.choice(hs) if hs else len(doc)
    doc[pos:pos] = block + ["\n"]
    return doc


def m_empty_value(doc, rng):
    i = _pick_opt(rng, doc)
    if i is not None:
        k, d, _ = _split_opt(doc[i])
        doc[i] = k.rstrip() + rng.choice([" =", "=", " = ", ":", " :  \t", " =\t"]) + (_eol(doc[i]) or "\n")
    return doc


def m_spaces_quotes(doc, rng):
    i = _pick_opt(rng, doc)
    if i is not None:
        k, d, _ = _split_opt(doc[i])
        v = rng.choice(['   "quoted value"   ', "  'single'  ", ' " spaced " ', '""', "''",
                        '  a  b  ', '"unterminated'])
        doc[i] = k + d + v + (_eol(doc[i]) or "\n")
    return doc


def m_crlf(doc, rng):
    return doc  # byte level, see apply_bytes


def m_tabs(doc, rng):
    for _ in range(rng.randint(1, 3)):
        i = _pick_opt(rng, doc)
        if i is None:
            break
        k, d, v = _split_opt(doc[i])
        doc[i] = k.strip() + rng.choice(["\t" + d + "\t", "\t\t" + d, d + "\t", " \t " + d + " \t "]) \
            + v.strip() + (_eol(doc[i]) or "\n")
    return doc


def m_trailing_ws(doc, rng):
    for _ in range(rng.randint(1, 4)):
        if not doc:
            break
        i = rng.randrange(len(doc))
        doc[i] = _body(doc[i]) + rng.choice(["   ", "\t", " \t ", "\u00a0"]) + (_eol(doc[i]) or "\n")
    return doc


def m_empty_key(doc, rng):
    line = rng.choice(["=value\n", "= value\n", ": value\n", "  = indented.empty.key\n", "=\n"])
    _insert_after_opt(rng, doc, [line] * (2 if rng.random() < 0.25 else 1))
    return doc


def m_header_trailing(doc, rng):
    hs = header_idx(doc)
    if hs:
        h = rng.choice(hs)
        name = _body(doc[h]).strip()
        doc[h] = name + rng.choice([" x", "x]", "] trailing", " = 1", "extra ] more", "\t; c"]) \
            + (_eol(doc[h]) or "\n")
    return doc


def m_header_spaces(doc, rng):
    hs = header_idx(doc)
    if hs:
        h = rng.choice(hs)
        name = _body(doc[h]).strip()[1:-1]
        doc[h] = rng.choice(["[ %s ]", "[%s ]", "[ %s]", "[\t%s]", "  [%s]", "[%s]   "]) % name \
            + (_eol(doc[h]) or "\n")
    return doc


def m_bad_header(doc, rng):
    kind = rng.choice(["[]\n", "[broker\n", "broker]\n", "[[broker]]\n", "[a=b]\n", "[:]\n"])
    pos = rng.choice(header_idx(doc) or [0])
    doc.insert(pos if rng.random() < 0.5 else len(doc), kind)
    return doc


def m_empty_file(doc, rng):
    return [] if rng.random() < 0.5 else rng.choice([["\n"], ["\n", "   \n", "\t\n"], [" "]])


def m_only_comments(doc, rng):
    return rng.choice([["# only a comment\n"], ["# a\n", "; b\n", "   # c\n", "\n"],
                       ["#[broker]\n", ";bootstrap.servers = x\n"]])


def m_double_eq(doc, rng):
    i = _pick_opt(rng, doc)
    if i is not None:
        k, d, v = _split_opt(doc[i])
        doc[i] = k.strip() + rng.choice(["==v", " = a = b", " := v", ":=v", " =: x", "=:=", " : a:b=c"]) \
            + (_eol(doc[i]) or "\n")
    return doc


def m_long_value(doc, rng):
    i = _pick_opt(rng, doc)
    if i is not None:
        n = rng.choice([300, 1000, 4000, 9000])
        v = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_.,:/") for _ in range(n))
        _set_value(doc, i, v)
        if rng.random() < 0.3:
            doc.insert(i + 1, "    " + "c" * 2000 + "\n")
    return doc


def m_non_ascii(doc, rng):
    i = _pick_opt(rng, doc)
    if i is not None:
        _set_value(doc, i, rng.choice(["Grüße aus München", "日本語の値", "emoji 😀 value", "ü",
                                       "naïve café", "Ελληνικά", "ΟΔΟΣ"]))
    return doc


def m_non_ascii_key(doc, rng):
    # str.lower() is Python's full Unicode lower-casing, incl. the context-
    # sensitive final sigma ('ΟΔΟΣ'.lower() == 'οδος' with U+03C2).
    _insert_after_opt(rng, doc, [rng.choice(["Größe = 1\n", "ÜBER.key = 2\n", "ΚΛΕΙΔΙΣ = final sigma\n",
                                             "ΟΔΟΣ.ΣΑΣ = sigma\n", "Straße = x\n", "ÀÉÎ = 3\n",
                                             "İD = dotted capital I\n", "ǅ = titlecase digraph\n"])])
    return doc


def m_unicode_ws(doc, rng):
    # Python's str.strip()/isspace() and re \s/\S whitespace: includes \x1c-\x1f,
    # \x85, \xa0, \u3000 ...; universal newlines split only on \r, \n, \r\n.
    _insert_after_opt(rng, doc, [rng.choice(["nbsp\u00a0=\u00a0v\u00a0\n", "\u3000ideo = indented\n",
                                             "nel = v\u0085\n", "fs = v\x1c\n", "\u2003em.space = 1\n",
                                             "ff = v\x0c\n", "vt\x0b= v\n", "\x1fus.indent = 1\n",
                                             "ls = a\u2028b\n", "zwsp\u200b = not whitespace\n",
                                             "bomkey\ufeff = not whitespace\n"])])
    return doc


def m_invalid_utf8(doc, rng):
    return doc  # byte level, see apply_bytes


def m_cr_mid_line(doc, rng):
    i = _pick_opt(rng, doc)
    if i is not None:
        kind = rng.random()
        if kind < 0.4:
            doc[i] = _body(doc[i]) + "\rinjected.key = 1" + (_eol(doc[i]) or "\n")
        elif kind < 0.7:
            doc[i] = _body(doc[i]) + "\r  indented.after.cr" + (_eol(doc[i]) or "\n")
        else:
            b = _body(doc[i])
            p = rng.randrange(len(b) + 1)
            doc[i] = b[:p] + "\r" + b[p:] + (_eol(doc[i]) or "\n")
    return doc


def m_indented_header(doc, rng):
    hs = [h for h in header_idx(doc) if h > 0 and _is_option(doc[h - 1])]
    hs = hs or [h for h in header_idx(doc) if h > 0]
    if hs:
        h = rng.choice(hs)
        doc[h] = rng.choice(["  ", "\t", " "]) + doc[h]
    return doc


def m_garbage_continuation(doc, rng):
    _insert_after_opt(rng, doc, ["this line has no delimiter\n", "   indented.after.garbage\n"])
    return doc


def m_nul(doc, rng):
    i = _pick_opt(rng, doc)
    if i is not None:
        _set_value(doc, i, "a\x00b")
    return doc


def m_no_final_newline(doc, rng):
    return doc  # byte level


def m_key_space(doc, rng):
    _insert_after_opt(rng, doc, [rng.choice(["sasl mechanism = PLAIN\n", "two  words\t= v\n",
                                             "  key with spaces : v\n"])])
    return doc


MUTATIONS = {
    "bom": (m_bom, 3), "remove_first_header": (m_remove_first_header, 3),
    "duplicate_section": (m_duplicate_section, 3), "duplicate_key": (m_duplicate_key, 4),
    "key_without_delimiter": (m_key_without_delimiter, 3), "colon": (m_colon, 3),
    "bare_percent": (m_bare_percent, 4), "double_percent": (m_double_percent, 3),
    "interpolation": (m_interpolation, 6), "continuation": (m_continuation, 7),
    "indented_first_key": (m_indented_first_key, 4), "inline_comment": (m_inline_comment, 4),
    "indented_comment": (m_indented_comment, 3), "default_section": (m_default_section, 5),
    "section_case": (m_section_case, 2), "unknown_section": (m_unknown_section, 2),
    "empty_value": (m_empty_value, 3), "spaces_quotes": (m_spaces_quotes, 3),
    "crlf": (m_crlf, 4), "tabs": (m_tabs, 3), "trailing_ws": (m_trailing_ws, 3),
    "empty_key": (m_empty_key, 3), "header_trailing": (m_header_trailing, 3),
    "header_spaces": (m_header_spaces, 3), "bad_header": (m_bad_header, 2),
    "empty_file": (m_empty_file, 1), "only_comments": (m_only_comments, 1),
    "double_eq": (m_double_eq, 3), "long_value": (m_long_value, 2), "non_ascii": (m_non_ascii, 3),
    "non_ascii_key": (m_non_ascii_key, 2), "unicode_ws": (m_unicode_ws, 3),
    "invalid_utf8": (m_invalid_utf8, 3), "cr_mid_line": (m_cr_mid_line, 3),
    "indented_header": (m_indented_header, 2), "garbage_continuation": (m_garbage_continuation, 2),
    "nul": (m_nul, 1), "no_final_newline": (m_no_final_newline, 2), "key_space": (m_key_space, 2),
}
BYTE_LEVEL = ("crlf", "invalid_utf8", "no_final_newline")


def apply_bytes(doc, names, rng):
    text = "".join(doc)
    if "no_final_newline" in names:
        text = text.rstrip("\r\n")
    if "crlf" in names:
        lines = text.split("\n")
        if rng.random() < 0.7:
            text = "\r\n".join(lines)
        else:  # mixed: only some lines CRLF
            text = "".join(l + ("\r\n" if rng.random() < 0.5 else "\n") for l in lines[:-1]) + lines[-1]
    data = text.encode("utf-8", "surrogateescape")
    if "invalid_utf8" in names:
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf",
                          b"\xf4\x90\x80\x80", b"\x80", b"\xfe\xfe"])
        nl = [i + 1 for i, c in enumerate(data) if c == 0x0A]
        starts = [0] + nl
        if rng.random() < 0.5 and len(starts) > 1:
            pos = rng.choice(starts)  # at a line start
        else:
            pos = rng.randrange(len(data) + 1) if data else 0
            # never split an existing multi-byte sequence or a CRLF pair
            while 0 < pos < len(data) and ((data[pos] & 0xC0) == 0x80 or
                                           (data[pos] == 0x0A and data[pos - 1] == 0x0D)):
                pos += 1
        data = data[:pos] + bad + data[pos:]
    return data


def mutate(base_doc, rng):
    names_all = sorted(MUTATIONS)
    weights = [MUTATIONS[n][1] for n in names_all]
    k = rng.choice([1, 1, 2, 2, 2, 3, 3])
    chosen = []
    while len(chosen) < k:
        n = rng.choices(names_all, weights)[0]
        if n not in chosen:
            chosen.append(n)
    doc = list(base_doc)
    for n in chosen:
        doc = MUTATIONS[n][0](doc, rng)
    data = apply_bytes(doc, chosen, rng)
    return chosen, data


def generate(outdir, seed, count):
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(seed)
    samples = sample_paths()
    docs = [load_doc(p) for p in samples]
    names = []
    manifest = {}
    for p in samples:
        name = sample_copy_name(p)
        shutil.copyfile(p, os.path.join(outdir, name))
        names.append(name)
        manifest[name] = []
    for n in range(count):
        while True:
            base = rng.randrange(len(docs))
            chosen, data = mutate(docs[base], rng)
            # Python decodes in 8 KiB chunks, so an invalid byte beyond the
            # first 8192 bytes could lose to an earlier fatal parse error;
            # keep such files out of the corpus (documented corner case).
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                if exc.start >= 8000:
                    continue
            break
        name = "mut-%04d.config" % n
        with open(os.path.join(outdir, name), "wb") as fh:
            fh.write(data)
        names.append(name)
        manifest[name] = [os.path.basename(os.path.dirname(samples[base])) + "/" +
                          os.path.basename(samples[base])] + chosen
    expected = {name: parse_file(os.path.join(outdir, name)) for name in names}
    with open(os.path.join(outdir, "expected.json"), "w", encoding="utf-8") as fh:
        _write_json(expected, fh)
    with open(os.path.join(outdir, "manifest.json"), "w", encoding="utf-8") as fh:
        _write_json(manifest, fh)
    return expected


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("files", nargs="+")
    g = sub.add_parser("generate")
    g.add_argument("outdir")
    g.add_argument("--seed", type=int, required=True)
    g.add_argument("--count", type=int, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "dump":
        _write_json(dump(args.files), sys.stdout)
    else:
        generate(args.outdir, args.seed, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
