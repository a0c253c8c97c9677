/*
 * The adversarial suite's helper (Tests/EZMSITests/Adversarial): compiled with `cc` by the tests at run time.
 * The attacking subcommands run as the unprivileged attacker (uid 1000, through setpriv); `snapshot` and `deep`
 * run as root for the test's own bookkeeping.
 *
 *   exchange DIR A B [A B ...]   swap each pair of names (renameat2 RENAME_EXCHANGE) in a loop until SIGTERM;
 *                                prints "exchanges=N failures=M" on exit. Names are relative to DIR.
 *   reuse DIR NAME MAX MODE      note NAME's inode number, unlink NAME, create files until one gets the same
 *                                inode number (at most MAX), give it MODE and rename it to NAME; removes the
 *                                others. Prints "hit INO after N" or "miss INO after N" (exit 0 either way).
 *   snapshot DIR                 every entry below DIR (DIR included), depth first, names sorted, one line each:
 *                                depth name type ino nlink mode uid gid size access-acl default-acl
 *                                (tab-separated; name with bytes outside 0x21-0x7e and '\' as \xHH; ACLs as the raw
 *                                attribute bytes in hex, '-' when none). Works at any depth: holds one directory
 *                                descriptor at a time (descends by name, climbs by ".."), so nothing may move
 *                                while it runs.
 *   deep DIR DEPTH DMODE FMODE EVERY
 *                                creates DIR/d/d/.../d (DEPTH levels below DIR), a file `f` (FMODE) at every
 *                                EVERY-th level and at the bottom; directories mode DMODE (octal modes).
 *   rmtree DIR                   removes DIR at any depth (rm -r is slow on 30,000 levels).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static volatile sig_atomic_t stop = 0;
static void on_term(int sig) { (void)sig; stop = 1; }

static int die(const char *what) {
    fprintf(stderr, "adversary: %s: %s\n", what, strerror(errno));
    return 2;
}

/* ---- exchange ---- */

static int cmd_exchange(int argc, char **argv) {
    if (argc < 4 || (argc - 2) % 2 != 0) { fprintf(stderr, "usage: exchange DIR A B [A B ...]\n"); return 2; }
    int dfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return die(argv[1]);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    unsigned long long done = 0, failed = 0;
    int pairs = (argc - 2) / 2;
    while (!stop) {
        for (int k = 0; k < pairs && !stop; k++) {
            const char *a = argv[2 + 2 * k], *b = argv[3 + 2 * k];
            if (syscall(SYS_renameat2, dfd, a, dfd, b, RENAME_EXCHANGE) == 0) done++; else failed++;
        }
    }
    printf("exchanges=%llu failures=%llu\n", done, failed);
    fflush(stdout);
    return 0;
}

/* ---- reuse ---- */

static int cmd_reuse(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: reuse DIR NAME MAX MODE\n"); return 2; }
    int dfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return die(argv[1]);
    const char *name = argv[2];
    long max = strtol(argv[3], NULL, 10);
    mode_t mode = (mode_t)strtol(argv[4], NULL, 8);
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return die(name);
    ino_t target = st.st_ino;
    if (unlinkat(dfd, name, 0) != 0) return die("unlink");
    char tmp[256];
    long n = 0, hit = -1;
    for (n = 0; n < max; n++) {
        snprintf(tmp, sizeof tmp, ".reuse-%s-%ld", name, n);
        int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) return die("create");
        struct stat nst;
        fstat(fd, &nst);
        if (nst.st_ino == target) {
            static const char payload[] = "#!/bin/sh\nexec /bin/sh -p\n";
            if (write(fd, payload, sizeof payload - 1) < 0) return die("write");
            fchmod(fd, mode);
            close(fd);
            if (renameat(dfd, tmp, dfd, name) != 0) return die("rename");
            hit = n;
            break;
        }
        close(fd);
    }
    long made = hit >= 0 ? hit : n;
    for (long k = 0; k < made; k++) {
        snprintf(tmp, sizeof tmp, ".reuse-%s-%ld", name, k);
        unlinkat(dfd, tmp, 0);
    }
    printf("%s %llu after %ld\n", hit >= 0 ? "hit" : "miss", (unsigned long long)target, made + 1);
    return 0;
}

/* ---- snapshot ---- */

static void put_name(FILE *out, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x21 || *p > 0x7e || *p == '\\') fprintf(out, "\\x%02x", *p); else fputc(*p, out);
    }
}

static void put_xattr(FILE *out, int fd, const char *attr) {
    unsigned char buf[65536];
    ssize_t n = fgetxattr(fd, attr, buf, sizeof buf);
    if (n <= 0) { fputc('-', out); return; }
    for (ssize_t i = 0; i < n; i++) fprintf(out, "%02x", buf[i]);
}

static char type_of(mode_t m) {
    switch (m & S_IFMT) {
    case S_IFDIR: return 'd';
    case S_IFREG: return 'f';
    case S_IFLNK: return 'l';
    case S_IFIFO: return 'p';
    case S_IFSOCK: return 's';
    default: return 'o';
    }
}

/* One line for `name` in directory `dfd` (name "." = the directory itself). */
static void entry_line(FILE *out, int dfd, const char *name, int depth, const char *shown) {
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        fprintf(out, "%d\t", depth);
        put_name(out, shown);
        fprintf(out, "\t?\t%s\n", strerror(errno));
        return;
    }
    fprintf(out, "%d\t", depth);
    put_name(out, shown);
    fprintf(out, "\t%c\t%llu\t%llu\t%04o\t%u\t%u\t%lld\t", type_of(st.st_mode), (unsigned long long)st.st_ino,
            (unsigned long long)st.st_nlink, (unsigned)(st.st_mode & 07777), st.st_uid, st.st_gid,
            S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_size);
    int fd = -1;
    if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))
        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode)))
        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
        put_xattr(out, fd, "system.posix_acl_access");
        fputc('\t', out);
        if (S_ISDIR(st.st_mode)) put_xattr(out, fd, "system.posix_acl_default"); else fputc('-', out);
        close(fd);
    } else {
        fputs("-\t-", out);
    }
    fputc('\n', out);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the directory (without . and ..); *count set. */
static char **list_dir(int fd, size_t *count) {
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fdopendir(dup);
    size_t n = 0, cap = 16;
    char **names = malloc(cap * sizeof *names);
    if (!d) { *count = 0; return names; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n == cap) { cap *= 2; names = realloc(names, cap * sizeof *names); }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    *count = n;
    return names;
}

struct level { char **subdirs; size_t count, next; };

static int cmd_snapshot(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: snapshot DIR\n"); return 2; }
    FILE *out = stdout;
    static char buf[1 << 20];
    setvbuf(out, buf, _IOFBF, sizeof buf);
    int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return die(argv[1]);
    entry_line(out, fd, ".", 0, ".");
    size_t cap = 64, top = 0;
    struct level *stack = malloc(cap * sizeof *stack);
    for (;;) {
        /* At a freshly entered directory (depth = top): its entries, then remember its subdirectories. */
        size_t n;
        char **names = list_dir(fd, &n);
        char **subs = malloc((n ? n : 1) * sizeof *subs);
        size_t ns = 0;
        for (size_t i = 0; i < n; i++) {
            entry_line(out, fd, names[i], (int)top + 1, names[i]);
            struct stat st;
            if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) subs[ns++] = names[i];
            else free(names[i]);
        }
        free(names);
        if (top == cap) { cap *= 2; stack = realloc(stack, cap * sizeof *stack); }
        stack[top++] = (struct level){subs, ns, 0};
        /* Next subdirectory to enter: climb while the current level is exhausted. */
        for (;;) {
            struct level *l = &stack[top - 1];
            if (l->next < l->count) {
                const char *name = l->subdirs[l->next++];
                /* The subtree of `name` follows its own line; mark where it starts. */
                fprintf(out, "%zu\t>\t", top);
                put_name(out, name);
                fputc('\n', out);
                int child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (child < 0) {
                    fprintf(out, "%zu\t!\tcannot enter: %s\n", top, strerror(errno));
                    continue;
                }
                close(fd);
                fd = child;
                break;
            }
            for (size_t i = 0; i < l->count; i++) free(l->subdirs[i]);
            free(l->subdirs);
            top--;
            if (top == 0) { close(fd); fflush(out); return 0; }
            int parent = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (parent < 0) return die("..");
            close(fd);
            fd = parent;
        }
    }
}

/* ---- deep ---- */

static int make_file(int dfd, mode_t mode) {
    int f = openat(dfd, "f", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (f < 0) return die("create f");
    if (write(f, "x", 1) != 1) return die("write f");
    close(f);
    return 0;
}

static int cmd_deep(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: deep DIR DEPTH DMODE FMODE EVERY\n"); return 2; }
    long depth = strtol(argv[2], NULL, 10), every = strtol(argv[5], NULL, 10);
    mode_t dmode = (mode_t)strtol(argv[3], NULL, 8), fmode = (mode_t)strtol(argv[4], NULL, 8);
    int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return die(argv[1]);
    umask(0);
    for (long i = 1; i <= depth; i++) {
        if (mkdirat(fd, "d", 0700) != 0) return die("mkdir d");
        int child = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) return die("open d");
        if (fchmod(child, dmode) != 0) return die("chmod d");
        close(fd);
        fd = child;
        if ((every > 0 && i % every == 0) || i == depth) {
            if (make_file(fd, fmode) != 0) return 2;
        }
    }
    close(fd);
    return 0;
}

/* ---- rmtree ---- */

/* Removes DIR and everything below it at any depth, one descriptor at a time (nothing may move meanwhile). */
static int cmd_rmtree(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: rmtree DIR\n"); return 2; }
    int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : die(argv[1]);
    size_t cap = 64, top = 0;
    char **names = malloc(cap * sizeof *names);
    for (;;) {
        size_t n;
        char **list = list_dir(fd, &n);
        char *sub = NULL;
        for (size_t i = 0; i < n; i++) {
            struct stat st;
            if (!sub && fstatat(fd, list[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) { sub = list[i]; continue; }
            if (unlinkat(fd, list[i], 0) != 0 && errno != ENOENT && errno != EISDIR) return die("unlink");
            free(list[i]);
        }
        free(list);
        if (sub) {
            int child = openat(fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (child < 0) return die("open");
            if (top == cap) { cap *= 2; names = realloc(names, cap * sizeof *names); }
            names[top++] = sub;
            close(fd);
            fd = child;
            continue;
        }
        if (top == 0) break;
        int parent = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (parent < 0) return die("..");
        close(fd);
        fd = parent;
        char *name = names[--top];
        if (unlinkat(fd, name, AT_REMOVEDIR) != 0) return die("rmdir");
        free(name);
    }
    close(fd);
    if (rmdir(argv[1]) != 0) return die("rmdir root");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: adversary exchange|reuse|snapshot|deep|rmtree ...\n"); return 2; }
    if (!strcmp(argv[1], "exchange")) return cmd_exchange(argc - 1, argv + 1);
    if (!strcmp(argv[1], "reuse")) return cmd_reuse(argc - 1, argv + 1);
    if (!strcmp(argv[1], "snapshot")) return cmd_snapshot(argc - 1, argv + 1);
    if (!strcmp(argv[1], "deep")) return cmd_deep(argc - 1, argv + 1);
    if (!strcmp(argv[1], "rmtree")) return cmd_rmtree(argc - 1, argv + 1);
    fprintf(stderr, "adversary: unknown command %s\n", argv[1]);
    return 2;
}
