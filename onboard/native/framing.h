/* Link framing kernels (DESIGN.md contract 3): CRC-32C and COBS, byte for byte as the
 * Python fallbacks in onboard/framing.py. */
#ifndef ORBITLITE_FRAMING_H
#define ORBITLITE_FRAMING_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF), continued
 * from `crc` (0 to start): ol_crc32c(ol_crc32c(0, a), b) == ol_crc32c(0, a || b). */
uint32_t ol_crc32c(uint32_t crc, const uint8_t *data, size_t n);

/* The most bytes ol_cobs_encode writes for n input bytes. */
#define OL_COBS_MAX_ENCODED(n) ((n) + (n) / 254 + 1)

/* Consistent Overhead Byte Stuffing: writes an encoding of `in` with no zero byte to `out`
 * (at least OL_COBS_MAX_ENCODED(n) bytes) and returns its length. The frame delimiter (0x00) is
 * not written. */
size_t ol_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);

/* Decodes `in` (no delimiter) into `out` (at least n bytes); returns the decoded length, or -1
 * when `in` is no COBS encoding (a zero byte, or a code that runs past the end). */
ptrdiff_t ol_cobs_decode(const uint8_t *in, size_t n, uint8_t *out);

#endif
