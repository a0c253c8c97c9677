#!/usr/bin/env python3
"""Generated folder-permission matrix for ezmsi's permission oracle (issue 3).

Usage
-----
``permission_matrix.py generate ROOT [--seed N] [--count K] [--force]``
    (Must run as root.)  Creates ROOT (0755, root:root) and K case folders
    ``ROOT/case-NNNN/`` (0755, root:root), each holding a data-folder setup
    named ``data`` -- the folder that gets mounted and judged -- or no ``data``
    at all (feature ``missing``).  Writes ``ROOT/manifest.json``: a list of
    ``{"case", "description", "features": [...]}``.  Deterministic for a given
    seed (``random.Random(N)``) and ROOT path (absolute symlink targets contain
    ROOT).  ``ROOT/outside/`` (0755 root) holds the targets of the symlinks that
    point outside their case folder (``case-NNNN-secret.txt`` 0600 root,
    ``case-NNNN-dir/`` 0700 root): unreadable for the container user, so a
    walk that follows a symlink fails.  ``--force`` first deletes an existing ROOT that holds a
    manifest.json; any other existing non-empty ROOT is refused.

``permission_matrix.py dump ROOT``
    Canonical, sorted dump of everything under ROOT (ROOT itself is ``.``):
    one line per entry with type, owner, group, mode (incl. setuid/setgid/
    sticky), size (regular files and symlinks only), symlink target, and the
    access and default ACLs decoded from the raw ``system.posix_acl_access`` /
    ``system.posix_acl_default`` xattrs (``-`` = none).  Never follows
    symlinks.  Times, link counts and directory sizes are left out on purpose:
    probing/fixing changes them and ``ezmsi undo`` cannot restore them.
    Two dumps are equal iff ``recursive lstat + getfacl -R -p -n`` are equal
    for the fields that matter.

``permission_matrix.py predict ROOT --kind upload|download [--uid U] [--gid G] [--groups 27,...]``
    NOT the oracle (the real container is).  A Python model of the Linux
    kernel's permission check (generic_permission/acl_permission_check/
    posix_acl_permission), applied with exactly the walk and the output format
    of container_probe.sh.  Used to cross-check the probe script and the
    generator's intent; defaults: uid 1000, gid 1000, groups 27.

Case design: every case has an *intent* (feature ``intent:*``) for a *grantee*
(``grantee:1000``, ``grantee:1234`` or ``grantee:world`` = both), and the
attributes of every entry are drawn at random from a method (owner, owning
group, other, named-user ACL, named-group ACL, two-group split, ...) until the
kernel model agrees with what the intent needs, e.g. "lists but cannot create"
for the grantee.  Intents: friendly (upload and download both work), upload-only,
download-only, break (friendly plus one deliberate trap somewhere, often deep),
random (uncontrolled attributes), empty, missing.  Extras sprinkled on top:
symlinks (to a file inside, to a file or a directory OUTSIDE the case folder,
absolute and relative, dangling, a loop to ``.``), mask::--- grants through
the other bits (``mask-empty-grant``), default ACLs, hidden files,
names with spaces, an existing ``LOGS/`` folder with registry CSVs.
"""

import argparse
import errno
import json
import os
import random
import shutil
import stat
import struct
import sys

# --------------------------------------------------------------------------
# Pools

UIDS = [0, 1000, 1234, 4321]
GIDS = [0, 1000, 27, 1234, 5555]
DIR_MODES = [0o700, 0o750, 0o755, 0o770, 0o775, 0o777, 0o711, 0o500, 0o300, 0o2775, 0o1777]
FILE_MODES = [0o600, 0o640, 0o644, 0o400, 0o000]
# Only used by the trap methods (owner/group class precedence).
TRAP_DIR_MODES = [0o077, 0o070, 0o707, 0o757, 0o744, 0o705, 0o311]
TRAP_FILE_MODES = [0o044, 0o004, 0o604, 0o0040, 0o200]
NAMED_USERS = [1000, 1234]
NAMED_GROUPS = [1000, 27, 1234]

# Identities: uid -> (primary gid, supplementary groups) as the container has them.
IDENTITIES = {1000: (1000, (27,)), 1234: (1234, ())}

# ACL xattr tags (include/uapi/linux/posix_acl.h)
ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
ACL_UNDEFINED_ID = 0xFFFFFFFF
XATTR_ACCESS = "system.posix_acl_access"
XATTR_DEFAULT = "system.posix_acl_default"

R, W, X = 4, 2, 1
# Operations as the probe performs them: each is ONE kernel permission check.
OPS = {"r": R, "x": X, "wx": W | X}


def pstr(p):
    return ("r" if p & R else "-") + ("w" if p & W else "-") + ("x" if p & X else "-")


# --------------------------------------------------------------------------
# ACL encoding / decoding / kernel model


def encode_acl(entries):
    out = [struct.pack("<I", 2)]
    for tag, perm, qid in entries:
        out.append(struct.pack("<HHI", tag, perm, qid))
    return b"".join(out)


def decode_acl(raw):
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw, 0)[0] != 2:
        return None
    return [struct.unpack_from("<HHI", raw, off) for off in range(4, len(raw), 8)]


def acl_text(entries):
    names = {ACL_USER_OBJ: "u", ACL_USER: "u", ACL_GROUP_OBJ: "g", ACL_GROUP: "g", ACL_MASK: "m", ACL_OTHER: "o"}
    parts = []
    for tag, perm, qid in entries:
        q = str(qid) if tag in (ACL_USER, ACL_GROUP) else ""
        parts.append("%s:%s:%s" % (names.get(tag, "?%x" % tag), q, pstr(perm)))
    return ",".join(parts)


def read_acl(path, name):
    try:
        raw = os.getxattr(path, name, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.ENOTSUP):
            return None
        raise
    return raw


def kernel_allows(cred, uid, gid, mode, acl, is_dir, want):
    """Mirror of fs/namei.c generic_permission() + acl_permission_check() and
    fs/posix_acl.c posix_acl_permission() for one permission check ``want``
    (a subset of R|W|X).  ``cred`` = (uid, gid, frozenset(all groups)).
    ``acl`` = decoded access-ACL entries or None."""
    cuid, cgid, cgroups = cred
    if cuid == 0:  # CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, no user namespace
        if is_dir or not (want & X):
            return True
        return bool(mode & 0o111)
    if cuid == uid:
        return (want & ~(mode >> 6) & 7) == 0
    if acl is not None and (mode & 0o070):
        found = False
        mask = None
        for tag, perm, _ in acl:
            if tag == ACL_MASK:
                mask = perm
        for tag, perm, qid in acl:
            if tag == ACL_USER_OBJ:
                if qid == cuid:  # never reached: owner handled above
                    return (perm & want) == want
            elif tag == ACL_USER:
                if qid == cuid:
                    return (perm & (7 if mask is None else mask) & want) == want
            elif tag == ACL_GROUP_OBJ:
                if gid in cgroups:
                    found = True
                    if (perm & want) == want:
                        return (perm & (7 if mask is None else mask) & want) == want
            elif tag == ACL_GROUP:
                if qid in cgroups:
                    found = True
                    if (perm & want) == want:
                        return (perm & (7 if mask is None else mask) & want) == want
            elif tag == ACL_OTHER:
                if found:
                    return False
                return (perm & want) == want
        return False
    # No ACL, or group class bits all zero (the kernel then skips the ACL!)
    if gid in cgroups:
        return (want & ~(mode >> 3) & 7) == 0
    return (want & ~mode & 7) == 0


def cred_for(uid, gid=None, groups=None):
    if gid is None:
        gid, sup = IDENTITIES.get(uid, (uid, ()))
    else:
        sup = groups or ()
    return (uid, gid, frozenset((gid,) + tuple(sup)))


# --------------------------------------------------------------------------
# Spec tree


class Node:
    def __init__(self, kind, name, **kw):
        self.kind = kind  # 'dir' | 'file' | 'link'
        self.name = name
        self.uid = kw.get("uid", 0)
        self.gid = kw.get("gid", 0)
        self.mode = kw.get("mode", 0o755 if kind == "dir" else 0o644)
        self.acl = None  # {'gobj', 'users', 'groups', 'mask'} or None
        self.dacl = None  # {'uobj','gobj','other','users','groups','mask'} or None
        self.target = kw.get("target")
        self.content = kw.get("content", b"")
        self.children = []
        self.parent = None
        self.role = kw.get("role", "")  # 'logs', 'logsfile', ...

    def add(self, child):
        child.parent = self
        self.children.append(child)
        return child

    def rel(self):
        parts = []
        n = self
        while n.parent is not None:
            parts.append(n.name)
            n = n.parent
        return "/".join(reversed(parts)) or "."

    def depth(self):
        d, n = 0, self
        while n.parent is not None:
            d, n = d + 1, n.parent
        return d

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    # Effective attributes -------------------------------------------------
    def access_entries(self):
        if self.acl is None or self.kind == "link":
            return None
        a = self.acl
        if not a["users"] and not a["groups"] and a["mask"] is None:
            return None
        mask = a["mask"]
        if mask is None:
            mask = a["gobj"]
            for p in list(a["users"].values()) + list(a["groups"].values()):
                mask |= p
        e = [(ACL_USER_OBJ, (self.mode >> 6) & 7, ACL_UNDEFINED_ID)]
        e += [(ACL_USER, a["users"][u], u) for u in sorted(a["users"])]
        e += [(ACL_GROUP_OBJ, a["gobj"], ACL_UNDEFINED_ID)]
        e += [(ACL_GROUP, a["groups"][g], g) for g in sorted(a["groups"])]
        e += [(ACL_MASK, mask, ACL_UNDEFINED_ID), (ACL_OTHER, self.mode & 7, ACL_UNDEFINED_ID)]
        return e

    def eff_mode(self):
        e = self.access_entries()
        if e is None:
            return self.mode
        mask = [p for t, p, _ in e if t == ACL_MASK][0]
        return (self.mode & ~0o070) | (mask << 3)

    def default_entries(self):
        if self.dacl is None or self.kind != "dir":
            return None
        d = self.dacl
        e = [(ACL_USER_OBJ, d["uobj"], ACL_UNDEFINED_ID)]
        e += [(ACL_USER, d["users"][u], u) for u in sorted(d["users"])]
        e += [(ACL_GROUP_OBJ, d["gobj"], ACL_UNDEFINED_ID)]
        e += [(ACL_GROUP, d["groups"][g], g) for g in sorted(d["groups"])]
        if d["users"] or d["groups"] or d["mask"] is not None:
            mask = d["mask"]
            if mask is None:
                mask = d["gobj"]
                for p in list(d["users"].values()) + list(d["groups"].values()):
                    mask |= p
            e.append((ACL_MASK, mask, ACL_UNDEFINED_ID))
        e.append((ACL_OTHER, d["other"], ACL_UNDEFINED_ID))
        return e

    def allows(self, uid, op):
        return kernel_allows(cred_for(uid), self.uid, self.gid, self.eff_mode(), self.access_entries(),
                             self.kind == "dir", OPS[op])


# --------------------------------------------------------------------------
# Attribute samplers


def rand_perm(rng):
    return rng.randrange(8)


def base_attrs(node, uid, gid, mode):
    node.uid, node.gid, node.mode, node.acl = uid, gid, mode, None


def random_acl(rng, node, force=False):
    if not force and rng.random() < 0.6:
        node.acl = None
        return
    users = {u: rand_perm(rng) for u in NAMED_USERS if rng.random() < 0.5}
    groups = {g: rand_perm(rng) for g in NAMED_GROUPS if rng.random() < 0.35}
    if not users and not groups:
        if rng.random() < 0.5:
            users[rng.choice(NAMED_USERS)] = rand_perm(rng)
        else:
            groups[rng.choice(NAMED_GROUPS)] = rand_perm(rng)
    mask = None if rng.random() < 0.5 else rand_perm(rng)
    node.acl = {"gobj": (node.mode >> 3) & 7, "users": users, "groups": groups, "mask": mask}


def mode_pool(node, trap=False):
    if node.kind == "dir":
        return DIR_MODES + (TRAP_DIR_MODES if trap else [])
    return FILE_MODES + (TRAP_FILE_MODES if trap else [])


def others_of(grantees):
    bad_u = set(grantees)
    bad_g = set()
    for g in grantees:
        pg, sup = IDENTITIES[g]
        bad_g.add(pg)
        bad_g.update(sup)
    return [u for u in UIDS if u not in bad_u], [g for g in GIDS if g not in bad_g], sorted(bad_g)


def sample_method(rng, node, method, grantees):
    """Draw attributes for ``node`` according to ``method``."""
    g = grantees[0]
    other_uids, other_gids, their_gids = others_of(grantees)
    pg, sup = IDENTITIES[g]
    my_groups = [pg] + list(sup)
    if method == "random":
        base_attrs(node, rng.choice(UIDS), rng.choice(GIDS), rng.choice(mode_pool(node)))
        random_acl(rng, node)
    elif method == "owner":
        base_attrs(node, g, rng.choice(GIDS), rng.choice(mode_pool(node)))
        if rng.random() < 0.2:
            random_acl(rng, node, force=True)
    elif method == "group":
        base_attrs(node, rng.choice(other_uids), rng.choice(my_groups), rng.choice(mode_pool(node)))
    elif method == "other":
        base_attrs(node, rng.choice(other_uids), rng.choice(other_gids), rng.choice(mode_pool(node)))
    elif method == "acl-user":
        base_attrs(node, rng.choice(other_uids), rng.choice(GIDS), rng.choice(mode_pool(node)))
        users = {g: rng.choice([7, 7, 5, 6, 4, 3, 1])}
        if rng.random() < 0.3:
            for u in NAMED_USERS:
                if u != g:
                    users[u] = rand_perm(rng)
        groups = {gg: rand_perm(rng) for gg in NAMED_GROUPS if rng.random() < 0.2}
        mask = None if rng.random() < 0.6 else rng.choice([7, 7, 5, 4, 6, 1, 3])
        node.acl = {"gobj": (node.mode >> 3) & 7, "users": users, "groups": groups, "mask": mask}
    elif method == "acl-group":
        base_attrs(node, rng.choice(other_uids), rng.choice(GIDS), rng.choice(mode_pool(node)))
        groups = {rng.choice(my_groups): rng.choice([7, 7, 5, 6, 4])}
        if rng.random() < 0.3:
            groups[rng.choice(NAMED_GROUPS)] = rand_perm(rng)
        mask = None if rng.random() < 0.6 else rng.choice([7, 5, 4, 6])
        node.acl = {"gobj": (node.mode >> 3) & 7, "users": {}, "groups": groups, "mask": mask}
    elif method == "two-group-split":
        # g:1000:r-x plus g:27:-wx (per-operation: list via 1000, create via 27)
        base_attrs(node, rng.choice(other_uids), rng.choice(other_gids),
                   rng.choice([0o700, 0o750, 0o770, 0o711]))
        node.acl = {"gobj": rng.choice([0, 5]), "users": {}, "groups": {1000: 5, 27: 3},
                    "mask": rng.choice([None, 7])}
    elif method == "union-trap":
        # g:1000:r-x plus g:27:-w-: the union is rwx but no single entry has w+x
        base_attrs(node, rng.choice(other_uids), rng.choice(other_gids), rng.choice([0o700, 0o707, 0o705]))
        node.acl = {"gobj": 0, "users": {}, "groups": {1000: 5, 27: rng.choice([2, 6])}, "mask": None}
    elif method == "mask-cut":
        base_attrs(node, rng.choice(other_uids), rng.choice(GIDS), rng.choice(mode_pool(node, trap=True)))
        node.acl = {"gobj": rand_perm(rng), "users": {g: 7}, "groups": {}, "mask": rng.choice([4, 5, 1, 6, 2, 3])}
    elif method == "mask-empty":
        # mask::--- : the kernel skips the ACL entirely and falls back to
        # owning-group/other mode bits (acl_permission_check: mode & S_IRWXG)
        base_attrs(node, rng.choice(other_uids), rng.choice(GIDS), rng.choice(mode_pool(node, trap=True)))
        node.acl = {"gobj": rand_perm(rng), "users": {g: rng.choice([0, 7])},
                    "groups": {rng.choice(NAMED_GROUPS): rand_perm(rng)} if rng.random() < 0.5 else {},
                    "mask": 0}
    elif method == "mask-empty-grant":
        # access via the other bits although a named entry for the grantee
        # says otherwise: with mask::--- the kernel never consults the ACL
        base_attrs(node, rng.choice(other_uids), rng.choice(other_gids), rng.choice(mode_pool(node)))
        node.acl = {"gobj": rand_perm(rng), "users": {g: rng.choice([0, 0, 4, 1])},
                    "groups": {rng.choice(NAMED_GROUPS): rand_perm(rng)} if rng.random() < 0.3 else {}, "mask": 0}
    elif method == "owner-trumps":
        base_attrs(node, g, rng.choice(GIDS), rng.choice(mode_pool(node, trap=True)))
    elif method == "user-entry-deny":
        base_attrs(node, rng.choice(other_uids), rng.choice(other_gids),
                   rng.choice([0o777, 0o755, 0o775, 0o644, 0o604, 0o1777]))
        node.acl = {"gobj": (node.mode >> 3) & 7, "users": {g: rng.choice([0, 4, 5, 1])}, "groups": {},
                    "mask": None}
    elif method == "group-deny":
        base_attrs(node, rng.choice(other_uids), rng.choice(my_groups),
                   rng.choice([0o707, 0o705, 0o757, 0o604, 0o1707, 0o744]))
        if rng.random() < 0.3:
            node.acl = {"gobj": (node.mode >> 3) & 7, "users": {}, "groups": {rng.choice(my_groups): rng.choice([0, 4, 1])},
                        "mask": None}
    elif method == "default-only":
        # default ACL grants everything but the access ACL/mode does not
        base_attrs(node, rng.choice(other_uids), rng.choice(other_gids), rng.choice([0o755, 0o750, 0o711, 0o700]))
    else:
        raise ValueError(method)


GRANT_METHODS_DIR = ["owner", "group", "other", "acl-user", "acl-group", "two-group-split"]
GRANT_METHODS_FILE = ["owner", "group", "other", "acl-user", "acl-group"]
BREAK_METHODS = ["owner-trumps", "user-entry-deny", "group-deny", "mask-cut", "mask-empty", "union-trap",
                 "default-only", "other", "random"]


def satisfies(node, grantees, need_ok, need_fail):
    for g in grantees:
        for op in need_ok:
            if not node.allows(g, op):
                return False
    for op in need_fail:
        if node.allows(grantees[0], op):
            return False
    return True


FALLBACKS = [
    ("owner", lambda n, g: (g, IDENTITIES[g][0], 0o770 if n.kind == "dir" else 0o600)),
    ("other", lambda n, g: (0, 0, 0o777 if n.kind == "dir" else 0o644)),
    ("rx", lambda n, g: (0, 0, 0o755 if n.kind == "dir" else 0o644)),
    ("x", lambda n, g: (0, 0, 0o711 if n.kind == "dir" else 0o600)),
    ("none", lambda n, g: (4321, 5555, 0o700 if n.kind == "dir" else 0o600)),
    ("r", lambda n, g: (0, 0, 0o744 if n.kind == "dir" else 0o644)),
]


def assign(rng, node, grantees, need_ok, need_fail=(), methods=None, tries=300):
    """Sample attributes from ``methods`` until the kernel model agrees."""
    if methods is None:
        methods = GRANT_METHODS_DIR if node.kind == "dir" else GRANT_METHODS_FILE
    methods = [m for m in methods if m not in ("two-group-split", "union-trap") or
               (grantees == [1000] and node.kind == "dir")]
    for _ in range(tries):
        m = rng.choice(methods)
        sample_method(rng, node, m, grantees)
        if satisfies(node, grantees, need_ok, need_fail):
            return m
    for name, f in FALLBACKS:
        node.uid, node.gid, node.mode = f(node, grantees[0])
        node.acl = None
        if satisfies(node, grantees, need_ok, need_fail):
            return "fallback-" + name
    raise RuntimeError("cannot satisfy %r/%r for %s" % (need_ok, need_fail, node.rel()))


# --------------------------------------------------------------------------
# Case builders


def build_tree(rng, depth, extras):
    root = Node("dir", "data")
    counter = [0]

    def fname(kind):
        counter[0] += 1
        n = counter[0]
        if kind == "file":
            r = rng.random()
            if "hidden" in extras and r < 0.15:
                return ".hidden-%02d" % n
            if "space-name" in extras and r < 0.3:
                return "my file %02d.txt" % n
            return "file-%02d.dat" % n
        return "sub-%02d" % n

    def fill(d, level):
        nfiles = rng.randint(0 if level else 1, 3)
        for _ in range(nfiles):
            d.add(Node("file", fname("file"), content=rng.randbytes(rng.choice([0, 1, 7, 33, 64]))))
        if level < depth:
            nsub = 1 if rng.random() < 0.6 else 2
            for i in range(nsub):
                s = d.add(Node("dir", fname("dir")))
                if i == 0:
                    fill(s, level + 1)
                elif rng.random() < 0.5:
                    fill(s, depth)  # leaf with files only
    fill(root, 0)
    return root


def files_of(root):
    return [n for n in root.walk() if n.kind == "file"]


def dirs_of(root):
    return [n for n in root.walk() if n.kind == "dir"]


def add_logs(rng, root):
    logs = root.add(Node("dir", "LOGS", role="logs"))
    logs.add(Node("file", "uploaded_to_test.csv", content=b"filename;size\n", role="logsfile"))
    logs.add(Node("file", "DataFileUploadDirectory.log", content=b"", role="logsfile"))
    return logs


def add_symlinks(rng, root, case_abs, features):
    """Adds 1-3 symlinks; returns the set of outside targets needed."""
    need = set()
    dirs = dirs_of(root)
    kinds = ["inside-file", "outside-file-rel", "outside-file-abs", "dangling", "outside-dir", "loop"]
    for _ in range(rng.randint(1, 3)):
        k = rng.choice(kinds)
        d = rng.choice(dirs)
        up = "../" * (d.depth() + 2)  # from d up to ROOT
        case = os.path.basename(case_abs)
        if k == "inside-file":
            fs = files_of(root)
            if not fs:
                k = "dangling"
            else:
                f = rng.choice(fs)
                # relative path from d to f
                dparts = [] if d.rel() == "." else d.rel().split("/")
                fparts = f.rel().split("/")
                common = 0
                while common < len(dparts) and common < len(fparts) - 1 and dparts[common] == fparts[common]:
                    common += 1
                target = "../" * (len(dparts) - common) + "/".join(fparts[common:])
        if k == "outside-file-rel":
            target = up + "outside/%s-secret.txt" % case
            need.add("file")
        elif k == "outside-file-abs":
            target = os.path.join(os.path.dirname(case_abs), "outside", case + "-secret.txt")
            need.add("file")
        elif k == "dangling":
            target = "does-not-exist-%d.dat" % rng.randrange(100)
        elif k == "outside-dir":
            target = up + "outside/%s-dir" % case
            need.add("dir")
        elif k == "loop":
            target = "."
        name = "link-%s-%d" % (k, rng.randrange(1000))
        if any(c.name == name for c in d.children):
            continue
        ln = d.add(Node("link", name, target=target))
        ln.uid, ln.gid = rng.choice(UIDS), rng.choice(GIDS)
        features.add("symlink-" + k)
    return need


def friendly_dacl(rng, grantees):
    users = {g: 7 for g in grantees if g != 1000 or rng.random() < 0.8}
    return {"uobj": 7, "gobj": rng.choice([5, 7]), "other": rng.choice([0, 5]), "users": users,
            "groups": {27: 7} if rng.random() < 0.2 else {}, "mask": None}


def random_dacl(rng):
    users = {u: rand_perm(rng) for u in NAMED_USERS if rng.random() < 0.5}
    groups = {g: rand_perm(rng) for g in NAMED_GROUPS if rng.random() < 0.3}
    return {"uobj": 7, "gobj": rand_perm(rng), "other": rand_perm(rng), "users": users, "groups": groups,
            "mask": None if rng.random() < 0.6 else rand_perm(rng)}


DIR_OK = ("r", "x", "wx")
DIR_LIST = ("r", "x")
FILE_OK = ("r",)

BREAKS = [
    # (label, node kind, need_ok, need_fail, methods)
    ("unreadable-file", "file", (), ("r",), ["owner-trumps", "user-entry-deny", "group-deny", "mask-cut",
                                             "mask-empty", "other", "random"]),
    ("untraversable-dir", "dir", (), ("x",), ["owner-trumps", "user-entry-deny", "group-deny", "mask-cut",
                                              "mask-empty", "other", "random"]),
    ("unlistable-dir", "dir", ("x",), ("r",), ["owner-trumps", "user-entry-deny", "group-deny", "mask-cut",
                                               "other", "random"]),
    ("no-create-dir", "dir", ("r", "x"), ("wx",), ["owner-trumps", "user-entry-deny", "group-deny", "mask-cut",
                                                   "mask-empty", "union-trap", "default-only", "other"]),
]


def make_case(rng, index, intent, case_abs):
    """Returns (data Node or None, description, features set, outside needs)."""
    features = set(["intent:" + intent])
    if intent == "missing":
        return None, "data folder does not exist", features | {"missing"}, set()

    if intent == "random":
        grantees = [rng.choice([1000, 1234])]
    else:
        r = rng.random()
        grantees = [1000] if r < 0.72 else ([1234] if r < 0.87 else [1000, 1234])
    features.add("grantee:" + ("world" if len(grantees) == 2 else str(grantees[0])))

    extras = set()
    if intent != "empty":
        for name, p in (("symlinks", 0.35), ("default-acl", 0.3), ("hidden", 0.15), ("space-name", 0.08),
                        ("logs-existing", 0.1)):
            if rng.random() < p:
                extras.add(name)
    depth = 0 if intent == "empty" else rng.choice([0, 1, 1, 2, 2, 3, 3])
    if intent == "empty":
        root = Node("dir", "data")
        features.add("empty")
    else:
        root = build_tree(rng, depth, extras)
    logs = add_logs(rng, root) if "logs-existing" in extras else None
    desc = []
    default_only = None
    g = grantees[0]
    gname = "uid %s" % "+".join(str(x) for x in grantees)

    # Baseline attributes per intent.
    if intent == "random" or (intent == "empty" and rng.random() < 0.4):
        for n in root.walk():
            if n.kind != "link":
                sample_method(rng, n, "random", grantees)
        desc.append("random owners/modes/ACLs")
        if intent == "empty":
            features.add("intent:empty-random")
    else:
        methods_used = []
        for n in root.walk():
            if n.kind == "dir":
                methods_used.append(assign(rng, n, grantees, DIR_OK))
            elif n.kind == "file":
                methods_used.append(assign(rng, n, grantees, FILE_OK))
        if rng.random() < 0.2:
            n = rng.choice([n for n in root.walk() if n.kind != "link"])
            m = assign(rng, n, grantees, DIR_OK if n.kind == "dir" else FILE_OK, (), ["mask-empty-grant"])
            methods_used.append(m)
            if m == "mask-empty-grant":
                features.add("mask-empty-grant")
        if "two-group-split" in methods_used:
            features.add("two-group-split")
        desc.append("every entry usable by %s via %s" % (gname, ",".join(sorted(set(methods_used)))))
        if intent == "upload-only":
            subs = [n for n in dirs_of(root) if n is not root and n.role != "logs"]
            if subs:
                k = rng.randint(1, len(subs))
                for n in rng.sample(subs, k):
                    assign(rng, n, grantees, DIR_LIST, ("wx",))
                desc.append("%d subdir(s) listable but not writable" % k)
            else:
                assign(rng, root, grantees, ("r", "x", "wx"))
                desc.append("flat")
        elif intent == "download-only":
            fs = [n for n in files_of(root) if n.role != "logsfile"]
            if fs:
                f = rng.choice(fs)
                m = assign(rng, f, grantees, (), ("r",), BREAKS[0][4])
                desc.append("file %s unreadable (%s)" % (f.rel(), m))
                features.add("break:unreadable-file")
        elif intent == "break":
            label, kind, ok, fail, methods = rng.choice(BREAKS)
            cands = [n for n in root.walk() if n.kind == kind and n.role == ""]
            if not cands:
                label, kind, ok, fail, methods = BREAKS[3]
                cands = [root]
            maxd = max(n.depth() for n in cands)
            deep = [n for n in cands if n.depth() == maxd]
            target = rng.choice(deep) if rng.random() < 0.6 else rng.choice(cands)
            m = assign(rng, target, grantees, ok, fail, methods)
            if m == "default-only":
                default_only = target
            desc.append("%s at %s (%s)" % (label, target.rel(), m))
            features.add("break:" + label)
            features.add("break-method:" + m)
            if target.depth() >= 2:
                features.add("deep-break")

    if "default-acl" in extras:
        friendly = intent not in ("random",) and rng.random() < 0.7
        for n in dirs_of(root):
            if rng.random() < 0.7:
                n.dacl = friendly_dacl(rng, grantees) if friendly else random_dacl(rng)
        desc.append("default ACLs")
    for n in root.walk():
        if n.kind == "dir" and n.dacl is None and rng.random() < 0.03:
            n.dacl = random_dacl(rng)
    if default_only is not None:
        # the trap: the default ACL grants everything, the access ACL/mode does not
        default_only.dacl = {"uobj": 7, "gobj": 7, "other": 7, "users": {g: 7}, "groups": {}, "mask": 7}

    if logs is not None:
        if intent in ("random",):
            desc.append("existing LOGS")
        elif rng.random() < 0.25:
            assign(rng, logs, grantees, DIR_LIST, ("wx",), ["other", "owner-trumps", "random"])
            desc.append("existing LOGS not writable")
            features.add("logs-not-writable")
        else:
            assign(rng, logs, grantees, DIR_OK)
            for f in logs.children:
                if f.name.endswith(".csv"):
                    f.uid, f.gid, f.mode, f.acl = (g if rng.random() < 0.8 else rng.choice(UIDS)), \
                        IDENTITIES[g][0], 0o600, None
                else:
                    assign(rng, f, grantees, FILE_OK)
            desc.append("existing LOGS")
        features.add("logs-existing")

    outside = set()
    if "symlinks" in extras:
        outside = add_symlinks(rng, root, case_abs, features)
    if "hidden" in extras and any(n.name.startswith(".") for n in root.walk()):
        features.add("hidden")
    if any(" " in n.name for n in root.walk()):
        features.add("space-name")
    if intent == "empty":
        desc.insert(0, "empty folder")
    return root, "; ".join(desc), features, outside


def derive_features(root, features):
    nodes = list(root.walk())
    maxd = max(n.depth() for n in nodes if n.kind == "dir")
    features.add("nested-%d" % maxd)
    for n in nodes:
        if n.kind == "link":
            features.add("symlink")
            continue
        em = n.eff_mode()
        if n.kind == "dir" and em & stat.S_ISGID:
            features.add("setgid")
        if n.kind == "dir" and em & stat.S_ISVTX:
            features.add("sticky")
        features.add("%s-owner-%d" % (n.kind, n.uid))
        features.add("%s-group-%d" % (n.kind, n.gid))
        features.add("%s-mode-%04o" % (n.kind, em & 0o7777))
        e = n.access_entries()
        if e is not None:
            features.add("acl")
            mask = [p for t, p, _ in e if t == ACL_MASK][0]
            for t, p, q in e:
                if t == ACL_USER:
                    features.add("acl-named-user-%d" % q)
                    if p & ~mask:
                        features.add("mask-cuts-named-entry")
                if t == ACL_GROUP:
                    features.add("acl-named-group-%d" % q)
                    if p & ~mask:
                        features.add("mask-cuts-named-entry")
            if mask == 0:
                features.add("mask-empty")
            gs = {q: p for t, p, q in e if t == ACL_GROUP}
            if gs.get(1000) == 5 and gs.get(27) == 3:
                features.add("two-group-split")
        if n.default_entries() is not None:
            features.add("default-acl")
        if n.kind == "file" and n.content == b"":
            features.add("empty-file")
    return features


# --------------------------------------------------------------------------
# Materialise


def apply_attrs(path, n):
    os.chown(path, n.uid, n.gid, follow_symlinks=False)
    if n.kind == "link":
        return
    os.chmod(path, n.mode)
    e = n.access_entries()
    if e is not None:
        os.setxattr(path, XATTR_ACCESS, encode_acl(e))
    d = n.default_entries()
    if d is not None:
        os.setxattr(path, XATTR_DEFAULT, encode_acl(d))


def materialise(n, path):
    if n.kind == "dir":
        os.mkdir(path, 0o700)
        for c in n.children:
            materialise(c, os.path.join(path, c.name))
    elif n.kind == "file":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, n.content)
        finally:
            os.close(fd)
    else:
        os.symlink(n.target, path)
    apply_attrs(path, n)
    # verify the kernel stored what we meant
    st = os.lstat(path)
    if n.kind != "link" and stat.S_IMODE(st.st_mode) != n.eff_mode():
        raise RuntimeError("%s: mode %o != %o" % (path, stat.S_IMODE(st.st_mode), n.eff_mode()))


def cmd_generate(a):
    if os.geteuid() != 0:
        sys.exit("permission_matrix.py generate: must run as root (chown)")
    root = os.path.abspath(a.root)
    if os.path.lexists(root):
        if os.path.isdir(root) and not os.path.islink(root) and not os.listdir(root):
            pass
        elif a.force and os.path.isfile(os.path.join(root, "manifest.json")):
            shutil.rmtree(root)
        else:
            sys.exit("permission_matrix.py: %s exists (use --force to replace a generated matrix)" % root)
    os.makedirs(root, exist_ok=True)
    os.chown(root, 0, 0)
    os.chmod(root, 0o755)
    old_umask = os.umask(0o022)
    rng = random.Random(a.seed)
    k = a.count
    weights = [("friendly", 0.27), ("upload-only", 0.11), ("download-only", 0.11), ("break", 0.27),
               ("random", 0.14), ("empty", 0.05), ("missing", 0.05)]
    plan = []
    for name, w in weights:
        plan += [name] * max(2, round(w * k))
    while len(plan) < k:
        plan.append(rng.choice([w[0] for w in weights]))
    rng.shuffle(plan)
    plan = plan[:k]
    manifest = []
    # Targets of the "outside" symlinks: outside every case folder, but under
    # ROOT so that `dump` covers them and they exist inside the container too.
    outside_dir = os.path.join(root, "outside")
    os.mkdir(outside_dir)
    os.chown(outside_dir, 0, 0)
    os.chmod(outside_dir, 0o755)
    try:
        for i in range(k):
            case = "case-%04d" % i
            case_abs = os.path.join(root, case)
            os.mkdir(case_abs)
            os.chown(case_abs, 0, 0)
            os.chmod(case_abs, 0o755)
            data, desc, feats, outside = make_case(rng, i, plan[i], case_abs)
            if "file" in outside:
                p = os.path.join(outside_dir, case + "-secret.txt")
                with open(p, "wb") as f:
                    f.write(b"outside the data folder\n")
                os.chown(p, 0, 0)
                os.chmod(p, 0o600)
            if "dir" in outside:
                p = os.path.join(outside_dir, case + "-dir")
                os.mkdir(p)
                with open(os.path.join(p, "inner.txt"), "wb") as f:
                    f.write(b"inner\n")
                os.chmod(os.path.join(p, "inner.txt"), 0o600)
                os.chmod(p, 0o700)
            if data is not None:
                materialise(data, os.path.join(case_abs, "data"))
                derive_features(data, feats)
            manifest.append({"case": case, "description": desc, "features": sorted(feats)})
    finally:
        os.umask(old_umask)
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.chmod(os.path.join(root, "manifest.json"), 0o644)
    print("generated %d cases in %s" % (k, root))


# --------------------------------------------------------------------------
# Dump


def dump_lines(root):
    root = os.path.abspath(root)
    out = []

    def one(path, rel):
        st = os.lstat(path)
        m = st.st_mode
        if stat.S_ISDIR(m):
            t = "d"
        elif stat.S_ISREG(m):
            t = "f"
        elif stat.S_ISLNK(m):
            t = "l"
        else:
            t = "?"
        parts = [rel, t, "%d:%d" % (st.st_uid, st.st_gid), "%04o" % stat.S_IMODE(m)]
        if t in "fl":
            parts.append("size=%d" % st.st_size)
        if t == "l":
            parts.append("-> " + os.readlink(path))
        else:
            for key, name in (("acl", XATTR_ACCESS), ("dacl", XATTR_DEFAULT)):
                raw = read_acl(path, name)
                if raw is None:
                    parts.append("%s=-" % key)
                else:
                    ents = decode_acl(raw)
                    parts.append("%s=%s" % (key, acl_text(ents) if ents is not None else "hex:" + raw.hex()))
        out.append((rel.encode("utf-8", "surrogateescape"), " ".join(parts)))
        if t == "d":
            for name in sorted(os.listdir(path)):
                one(os.path.join(path, name), name if rel == "." else rel + "/" + name)

    one(root, ".")
    out.sort()
    return [l for _, l in out]


def cmd_dump(a):
    w = sys.stdout.write
    for line in dump_lines(a.root):
        w(line + "\n")


# --------------------------------------------------------------------------
# Predict (kernel model + probe walk)


def fs_allows(cred, path, op):
    st = os.lstat(path)
    raw = read_acl(path, XATTR_ACCESS)
    acl = decode_acl(raw) if raw is not None else None
    return kernel_allows(cred, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), acl,
                         stat.S_ISDIR(st.st_mode), OPS[op])


def predict_case(cred, data, kind):
    """Same walk and output as container_probe.sh."""
    if not os.path.lexists(data):
        return "MISSING" if kind == "download" else "FAIL exists ."
    if os.path.islink(data) or not os.path.isdir(data):
        return "FAIL exists ."

    def visit(rel):
        p = data if rel == "." else os.path.join(data, rel)
        if not (fs_allows(cred, p, "x") and fs_allows(cred, p, "r")):
            return "FAIL list " + rel
        names = sorted(os.listdir(p), key=lambda s: s.encode("utf-8", "surrogateescape"))
        if kind == "upload" and rel == ".":
            lp = os.path.join(data, "LOGS")
            if os.path.lexists(lp):
                if os.path.islink(lp) or not os.path.isdir(lp):
                    return "FAIL create LOGS"
                if not (fs_allows(cred, lp, "x") and fs_allows(cred, lp, "wx")):
                    return "FAIL create LOGS"
            elif not fs_allows(cred, p, "wx"):
                return "FAIL create ."
        if kind == "download" and not fs_allows(cred, p, "wx"):
            return "FAIL create " + rel
        for name in names:
            crel = name if rel == "." else rel + "/" + name
            cp = os.path.join(data, crel)
            st = os.lstat(cp)
            if stat.S_ISLNK(st.st_mode):
                continue
            if stat.S_ISDIR(st.st_mode):
                r = visit(crel)
                if r:
                    return r
            elif stat.S_ISREG(st.st_mode) and kind == "upload":
                if not fs_allows(cred, cp, "r"):
                    return "FAIL read " + crel
        return None

    return visit(".") or "OK"


def cmd_predict(a):
    groups = tuple(int(x) for x in a.groups.split(",") if x) if a.groups is not None else None
    if a.gid is None and groups is None:
        cred = cred_for(a.uid)
    else:
        gid = a.gid if a.gid is not None else a.uid
        cred = (a.uid, gid, frozenset((gid,) + (groups or ())))
    root = os.path.abspath(a.root)
    for c in sorted(os.listdir(root)):
        if c.startswith("case-"):
            print("%s %s" % (c, predict_case(cred, os.path.join(root, c, "data"), a.kind)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("root")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--count", type=int, default=220)
    g.add_argument("--force", action="store_true")
    d = sub.add_parser("dump")
    d.add_argument("root")
    p = sub.add_parser("predict")
    p.add_argument("root")
    p.add_argument("--kind", choices=["upload", "download"], required=True)
    p.add_argument("--uid", type=int, default=1000)
    p.add_argument("--gid", type=int, default=None)
    p.add_argument("--groups", default=None, help="comma-separated supplementary gids")
    a = ap.parse_args(argv)
    {"generate": cmd_generate, "dump": cmd_dump, "predict": cmd_predict}[a.cmd](a)


if __name__ == "__main__":
    main()
