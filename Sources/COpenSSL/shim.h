#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H
/* OpenSSL (Debian libssl-dev) for the broker probes: a TLS client handshake, certificate verification, and the
   HMAC/PBKDF2/digests SCRAM needs. Function-like macros are wrapped here because Swift cannot import them. */
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

static inline long ezmsi_ssl_set_sni(SSL *ssl, const char *name) { return SSL_set_tlsext_host_name(ssl, name); }
static inline const EVP_MD *ezmsi_sha256(void) { return EVP_sha256(); }
static inline const EVP_MD *ezmsi_sha512(void) { return EVP_sha512(); }
#endif
