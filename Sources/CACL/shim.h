#ifndef CACL_SHIM_H
#define CACL_SHIM_H
#include <sys/types.h>
#include <sys/acl.h>      /* acl_get_file, acl_get_entry, ... */
#include <acl/libacl.h>   /* acl_get_perm, acl_extended_file, acl_to_any_text */
#include <sys/vfs.h>      /* statfs: is /proc the kernel's procfs (the fixer trusts its magic links only then) */
#endif
