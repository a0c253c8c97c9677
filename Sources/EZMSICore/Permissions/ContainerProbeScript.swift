/// The script a throwaway container runs to try, for real, what the program does in its folder
/// (`ezmsi doctor --prove`, and the oracle matrix of the tests). POSIX sh with busybox applets only.
public enum ContainerProbeScript {
    public static let text = #"""
#!/bin/sh
# container_probe.sh ROOTDIR upload|download
#
# Ground truth for ezmsi's folder-permission verdicts (issue 3).  Runs under
# busybox sh INSIDE the fixture container (only busybox applets), as the
# container's user, with the generated matrix (permission_matrix.py) mounted
# at ROOTDIR.  For every ROOTDIR/case-NNNN it performs, for real, the
# operations the OpenMSIStream program needs on ROOTDIR/case-NNNN/data and
# prints one line per case, in case order:
#
#   case-NNNN OK
#   case-NNNN FAIL <operation> <path relative to data, "." = data itself>
#   case-NNNN MISSING            (download only: data does not exist)
#
# Everything after the third space is the path (it may contain spaces).
# Operations, each one real system call sequence:
#   exists  data is missing (upload), or is a symlink / not a directory
#   list    `cd DIR && ls -1A` fails (needs r and x on DIR, checked separately
#           by the kernel: opendir needs r, chdir/lstat need x)
#   read    `head -c1 FILE` fails (open O_RDONLY: r on FILE)
#   create  upload: at ".", `mkdir LOGS` (+ rmdir) fails; at "LOGS" (LOGS
#           already exists) `touch LOGS/<tmp>` (+ rm) fails, or LOGS is not a
#           directory.  download: `touch DIR/<tmp>` (+ rm) fails (w+x on DIR,
#           ONE kernel check)
#
# upload (DataFileUploadDirectory): data must exist; list ".", create (LOGS),
#   then a pre-order walk of the tree, entries in byte order (`ls` in the C
#   locale): list every directory, read every regular file (also inside LOGS).
# download (DataFileDownloadDirectory): data missing -> MISSING (the harness
#   handles it: a real `docker run -v` creates the host path as root:root 0755
#   before the container starts); otherwise the same walk doing list + create
#   on every directory; files are not checked.
# Both: symlinks are never followed nor descended into (skipped, whatever
#   they point to); entries other than directories and regular files are
#   skipped; the first failure ends the case.  Nothing is left behind: the
#   LOGS directory / temporary files created are removed at once (directory
#   mtimes do change).
#
# `--single DATA upload|download` judges one folder and prints `single OK` / `single FAIL …` (ezmsi doctor --prove).
#
# Needs `local` (busybox ash, dash and bash all have it).

set -u
set -f          # no globbing of file names taken from `ls`

# What the programs write into their folder (ezmsi's program table).
logs_dir='\#(ProgramTable.uploadLogFolder)'
upload_log='\#(ProgramTable.uploadLogName)'
download_log='\#(ProgramTable.downloadLogName)'

single=
if [ "${1:-}" = --single ]; then
    single=yes
    shift
fi
if [ $# -ne 2 ]; then
    echo "usage: $0 [--single] ROOTDIR upload|download" >&2
    exit 2
fi
root=$1
kind=$2
case $kind in upload | download) ;; *)
    echo "$0: kind must be upload or download, not '$kind'" >&2
    exit 2
    ;;
esac
if ! [ -d "$root" ]; then
    echo "$0: $root is not a directory" >&2
    exit 2
fi

NL='
'
IFS=$NL
tmpname=".ezmsi-probe-$$"
result=
data=

fail() { # op path
    result="FAIL $1 $2"
}

warn() {
    echo "container_probe: warning: $*" >&2
}

# Sets $names to the entries of $data/$1 (one per line), non-zero if the
# directory cannot be entered and listed.
list_dir() {
    names=$(cd -- "$data/$1" 2>/dev/null && ls -1A 2>/dev/null)
}

# Creates and removes a temporary file in $1 (absolute); non-zero if it
# cannot be created.
try_create_file() {
    local f n=0
    f=$1/$tmpname
    while [ -e "$f" ] || [ -L "$f" ]; do
        n=$((n + 1))
        f=$1/$tmpname-$n
    done
    touch -- "$f" 2>/dev/null || return 1
    rm -f -- "$f" 2>/dev/null || warn "could not remove $f"
    return 0
}

# upload: LOGS must be creatable in data, or writable if it exists.
check_logs() {
    local lp
    lp=$data/$logs_dir
    if [ -L "$lp" ]; then
        fail create "$logs_dir"
    elif [ -e "$lp" ]; then
        if [ -d "$lp" ]; then
            try_create_file "$lp" || fail create "$logs_dir"
            # The program appends to its log file there (Python logging opens it with "a"). A subshell: a failed redirection
            # of a special built-in would end the script itself.
            if [ -f "$lp/$upload_log" ] && [ ! -L "$lp/$upload_log" ]; then
                ( : >> "$lp/$upload_log" ) 2>/dev/null || fail write "$logs_dir/$upload_log"
            fi
        else
            fail create "$logs_dir"
        fi
    elif mkdir -- "$lp" 2>/dev/null; then
        rmdir -- "$lp" 2>/dev/null || warn "could not remove $lp"
    else
        fail create .
    fi
}

visit() { # rel
    local rel names e p full
    rel=$1
    if ! list_dir "$rel"; then
        fail list "$rel"
        return
    fi
    if [ "$kind" = upload ]; then
        if [ "$rel" = . ]; then
            check_logs
            [ -n "$result" ] && return
        fi
    else
        if ! try_create_file "$data/$rel"; then
            fail create "$rel"
            return
        fi
        # The program appends to its log file in the folder (Python logging opens it with "a").
        if [ "$rel" = . ] && [ -f "$data/$download_log" ] && [ ! -L "$data/$download_log" ]; then
            if ! ( : >> "$data/$download_log" ) 2>/dev/null; then
                fail write "$download_log"
                return
            fi
        fi
    fi
    for e in $names; do
        if [ "$rel" = . ]; then p=$e; else p=$rel/$e; fi
        full=$data/$p
        if [ -L "$full" ]; then
            continue
        elif [ -d "$full" ]; then
            visit "$p"
        elif [ -f "$full" ]; then
            if [ "$kind" = upload ] && ! head -c1 -- "$full" >/dev/null 2>&1; then
                fail read "$p"
            fi
        fi
        [ -n "$result" ] && return
    done
}

judge() { # data
    data=$1
    result=
    if ! [ -e "$data" ] && ! [ -L "$data" ]; then
        if [ "$kind" = download ]; then
            result=MISSING
        else
            fail exists .
        fi
    elif [ -L "$data" ] || ! [ -d "$data" ]; then
        fail exists .
    else
        visit .
    fi
}

if [ -n "$single" ]; then
    judge "$root"
    echo "single ${result:-OK}"
    exit 0
fi
cases=$(ls -1 -- "$root") || exit 2
for c in $cases; do
    case $c in case-*) ;; *) continue ;; esac
    [ -d "$root/$c" ] || continue
    judge "$root/$c/data"
    echo "$c ${result:-OK}"
done
"""#
}
