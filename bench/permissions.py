#!/usr/bin/env python3
"""Benchmarks of issue 3, side by side with the reference tools in one run, on generated trees.

  audit       `ezmsi doctor --only folder.tree` vs `find DIR -printf '%U %G %m\\n'` (target <= 1.5x)
              and vs `getfacl -R -p DIR` (target <= 0.25x)
  fix         `ezmsi fix --yes` vs `setfacl -R -m u:1000:rwX,d:u:1000:rwX DIR` on identical fresh copies (target <= 1.0x)
  refix       a second `ezmsi fix --yes` (nothing to change) vs find (target <= 1.5x)
  undo        `ezmsi undo` of that fix vs the fix itself (target <= 1.5x)
  memory      peak RSS of the audit on a tree of 1,000,000 entries (target <= 64 MiB), and of the fix and the undo
              there (undo: time <= 1.5x the fix's, peak <= 64 MiB)

Usage: bench/permissions.py [--files 200000] [--big 1000000] [--runs 3] [--ezmsi .build/release/ezmsi] [--skip-memory]
Run as root (trees are root-owned 0640 files in 0750 folders, so uid 1000 needs a change everywhere).
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time, resource

p = argparse.ArgumentParser()
p.add_argument("--files", type=int, default=200_000)
p.add_argument("--big", type=int, default=1_000_000)
p.add_argument("--runs", type=int, default=3)
p.add_argument("--ezmsi", default=".build/release/ezmsi")
p.add_argument("--work", default="/tmp/ezmsi-bench")
p.add_argument("--skip-memory", action="store_true")
a = p.parse_args()
ezmsi = os.path.abspath(a.ezmsi)
os.makedirs(a.work, exist_ok=True)
deployment = os.path.join(a.work, "deployment")
os.makedirs(deployment, exist_ok=True)
with open(os.path.join(deployment, "openmsi.env"), "w") as f:
    f.write("CONFLUENT_BOOTSTRAP_SERVERS=localhost:9092\nCONFLUENT_USERNAME=u\nCONFLUENT_PASSWORD=p\n")
os.chmod(os.path.join(deployment, "openmsi.env"), 0o600)
shutil.copy("example/config.config", deployment)
state = os.path.join(a.work, "state")   # fix journals go here, not into ~/.local/state


def make_tree(root, files, per_dir=1000):
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    os.chmod(root, 0o750)
    dirs = max(1, files // per_dir)
    for d in range(dirs):
        sub = os.path.join(root, f"d{d:04d}")
        os.mkdir(sub)
        os.chmod(sub, 0o750)
        for i in range(per_dir):
            fd = os.open(os.path.join(sub, f"f{i:05d}.dat"), os.O_CREAT | os.O_WRONLY, 0o640)
            os.close(fd)
    return dirs + dirs * per_dir + 1


def timed(cmd, **kw):
    drop_caches_not_needed = None
    start = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    return time.perf_counter() - start, r


def doctor(folder, extra=()):
    env = dict(os.environ, XDG_STATE_HOME=state)
    return [ezmsi, "doctor", "--deployment", deployment, "--folder", folder, *extra, "--",
            "DataFileUploadDirectory", "data", "--config", "config.config"], env


def undo(folder):
    env = dict(os.environ, XDG_STATE_HOME=state)
    return [ezmsi, "undo", "--deployment", deployment, "--folder", folder], env


def fix(folder):
    env = dict(os.environ, XDG_STATE_HOME=state)
    return [ezmsi, "fix", "--yes", "--deployment", deployment, "--folder", folder, "--",
            "DataFileUploadDirectory", "data", "--config", "config.config"], env


results = {}
tree = os.path.join(a.work, "tree")
entries = make_tree(tree, a.files)
results["entries"] = entries

# 1. audit vs find vs getfacl, alternated.
find_t, getfacl_t, audit_t = [], [], []
cmd, env = doctor(tree, ("--only", "folder.tree", "--format", "json"))
subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL)  # warm: identity cache, page cache
for _ in range(a.runs):
    t, _ = timed(["find", tree, "-printf", "%U %G %m\n"]); find_t.append(t)
    t, _ = timed(["getfacl", "-R", "-p", tree]); getfacl_t.append(t)
    t, _ = timed(cmd, env=env); audit_t.append(t)
results["find_s"] = round(statistics.median(find_t), 3)
results["getfacl_s"] = round(statistics.median(getfacl_t), 3)
results["audit_s"] = round(statistics.median(audit_t), 3)
results["audit_vs_find"] = round(results["audit_s"] / results["find_s"], 3)
results["audit_vs_getfacl"] = round(results["audit_s"] / results["getfacl_s"], 3)

# 2. fix vs setfacl on identical fresh copies; 3. second fix vs find.
fix_t, setfacl_t, refix_t, find2_t, undo_t = [], [], [], [], []
for _ in range(a.runs):
    a_tree, b_tree = os.path.join(a.work, "fix-a"), os.path.join(a.work, "fix-b")
    make_tree(a_tree, a.files)
    make_tree(b_tree, a.files)
    cmd, env = fix(a_tree)
    # Both start from a disk with nothing pending (the trees just made are written out first: ezmsi's journal fsync
    # would otherwise pay for writing them), and they take turns going first.
    def run_fix():
        os.sync()
        t, r = timed(cmd, env=env)
        if r.returncode != 0:
            sys.exit(f"ezmsi fix failed ({r.returncode}): {r.stderr.decode()[-500:]}")
        fix_t.append(t)
    def run_setfacl():
        os.sync()
        t, _ = timed(["setfacl", "-R", "-m", "u:1000:rwX,d:u:1000:rwX", b_tree]); setfacl_t.append(t)
    for step in ((run_fix, run_setfacl) if len(fix_t) % 2 == 0 else (run_setfacl, run_fix)):
        step()
    os.sync()
    t, _ = timed(cmd, env=env); refix_t.append(t)
    t, _ = timed(["find", a_tree, "-printf", "%U %G %m\n"]); find2_t.append(t)
    cmd, env = undo(a_tree)
    os.sync()
    t, r = timed(cmd, env=env)
    if r.returncode != 0:
        sys.exit(f"ezmsi undo failed ({r.returncode}): {r.stderr.decode()[-500:]}")
    undo_t.append(t)
    shutil.rmtree(a_tree); shutil.rmtree(b_tree)
results["fix_s"] = round(statistics.median(fix_t), 3)
results["setfacl_s"] = round(statistics.median(setfacl_t), 3)
results["fix_vs_setfacl"] = round(results["fix_s"] / results["setfacl_s"], 3)
results["refix_s"] = round(statistics.median(refix_t), 3)
results["refix_vs_find"] = round(results["refix_s"] / statistics.median(find2_t), 3)
results["undo_s"] = round(statistics.median(undo_t), 3)
results["undo_vs_fix"] = round(results["undo_s"] / results["fix_s"], 3)

# 4. peak memory of the audit on a big tree.
if not a.skip_memory:
    big = os.path.join(a.work, "big")
    results["big_entries"] = make_tree(big, a.big)
    cmd, env = doctor(big, ("--only", "folder.tree", "--format", "json"))
    r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results["big_audit_peak_mib"] = round(int(r.stderr.decode().strip().splitlines()[-1]) / 1024, 1)
    def peak(cmd, env):
        os.sync()
        start = time.perf_counter()
        r = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode not in (0, 1):
            sys.exit(f"{cmd[1]} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
        return time.perf_counter() - start, round(int(r.stderr.decode().strip().splitlines()[-1]) / 1024, 1)
    results["big_fix_s"], results["big_fix_peak_mib"] = peak(*fix(big))
    results["big_undo_s"], results["big_undo_peak_mib"] = peak(*undo(big))
    results["big_undo_vs_fix"] = round(results["big_undo_s"] / results["big_fix_s"], 3)
    shutil.rmtree(big)

results["targets"] = {"audit_vs_find": 1.5, "audit_vs_getfacl": 0.25, "fix_vs_setfacl": 1.0, "refix_vs_find": 1.5,
                      "undo_vs_fix": 1.5, "big_audit_peak_mib": 64, "big_undo_vs_fix": 1.5, "big_undo_peak_mib": 64}
results["met"] = all(results.get(k, 0) <= v for k, v in results["targets"].items())
print(json.dumps(results))
shutil.rmtree(tree)
