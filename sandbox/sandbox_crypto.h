/*
 * sandbox_crypto.h — an example sandbox library: hashing and randomness for the VM, from
 * libsodium. Link isoworld_sandbox_crypto. It is also the reference for writing a library
 * with the public API of sandbox.h only (see lib_crypto.c).
 *
 * In the VM:
 *   crypto.sha256(data)          -> hex string (data: a string, hashed as UTF-8, or bytes)
 *   crypto.sha256Async(data)     -> Promise of the same, computed on a host thread
 *   crypto.randomBytes(n)        -> Uint8Array of n random bytes (n <= 65536)
 *   crypto.getRandomValues(view) -> view, filled with random bytes (<= 65536)
 */
#ifndef ISOWORLD_SANDBOX_CRYPTO_H
#define ISOWORLD_SANDBOX_CRYPTO_H

#include "sandbox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A new crypto library (free it with sbx_library_free once no runtime uses it).
 * SBX_ENGINE if libsodium cannot be initialised. */
int sbx_crypto_library_new(sbx_library **out);

#ifdef __cplusplus
}
#endif
#endif
