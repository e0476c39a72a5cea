#ifndef GATEWAY_COPENSSL_SHIM_H
#define GATEWAY_COPENSSL_SHIM_H
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

// Macros and variadics of libcrypto, as prefixed functions Swift can call.
static inline void cossl_free(void *p) { OPENSSL_free(p); }
static inline int cossl_rsa_pkcs1_padding(void) { return RSA_PKCS1_PADDING; }
static inline int cossl_rsa_pss_padding(void) { return RSA_PKCS1_PSS_PADDING; }
static inline int cossl_rsa_pss_saltlen_digest(void) { return RSA_PSS_SALTLEN_DIGEST; }
static inline int cossl_pkey_rsa(void) { return EVP_PKEY_RSA; }
static inline int cossl_pkey_rsa_pss(void) { return EVP_PKEY_RSA_PSS; }
static inline int cossl_pkey_ec(void) { return EVP_PKEY_EC; }
static inline int cossl_pkey_ed25519(void) { return EVP_PKEY_ED25519; }
static inline int cossl_selection_keypair(void) { return OSSL_KEYMGMT_SELECT_KEYPAIR; }
static inline int cossl_selection_public(void) { return OSSL_KEYMGMT_SELECT_PUBLIC_KEY; }
static inline int cossl_selection_any(void) { return OSSL_KEYMGMT_SELECT_ALL; }
static inline int cossl_pkey_keypair(void) { return EVP_PKEY_KEYPAIR; }
static inline int cossl_pkey_public_key(void) { return EVP_PKEY_PUBLIC_KEY; }
static inline BIO *cossl_bio_mem(const void *data, int len) { return BIO_new_mem_buf(data, len); }
static inline long cossl_bio_get_mem(BIO *b, char **pp) { return BIO_get_mem_data(b, pp); }
#endif
