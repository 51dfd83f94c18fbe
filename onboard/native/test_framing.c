/* ctest unit tests of the link framing kernels: CRC-32C check values and COBS round trips. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "framing.h"

static void test_crc32c(void) {
    /* The check value of the CRC-32C catalogue entry, and RFC 3720 (iSCSI) B.4 vectors. */
    const char *check = "123456789";
    CHECK(ol_crc32c(0, (const uint8_t *)check, 9) == 0xE3069283u, "check value");
    uint8_t buf[32];
    memset(buf, 0, sizeof buf);
    CHECK(ol_crc32c(0, buf, 32) == 0x8A9136AAu, "32 zeros");
    memset(buf, 0xFF, sizeof buf);
    CHECK(ol_crc32c(0, buf, 32) == 0x62A8AB43u, "32 0xFF");
    for (int i = 0; i < 32; ++i) buf[i] = (uint8_t)i;
    CHECK(ol_crc32c(0, buf, 32) == 0x46DD794Eu, "incrementing");
    /* Chaining: every split point of the incrementing vector gives the same value. */
    for (size_t k = 0; k <= 32; ++k)
        CHECK(ol_crc32c(ol_crc32c(0, buf, k), buf + k, 32 - k) == 0x46DD794Eu, "split at %zu", k);
    CHECK(ol_crc32c(0, buf, 0) == 0, "empty");
}

static void round_trip(const uint8_t *in, size_t n, const char *what) {
    uint8_t enc[OL_COBS_MAX_ENCODED(600)], dec[600];
    size_t m = ol_cobs_encode(in, n, enc);
    CHECK(m <= OL_COBS_MAX_ENCODED(n), "%s: encoded length %zu", what, m);
    CHECK(memchr(enc, 0, m) == NULL, "%s: a zero in the encoding", what);
    ptrdiff_t back = ol_cobs_decode(enc, m, dec);
    CHECK(back == (ptrdiff_t)n && memcmp(dec, in, n) == 0, "%s: round trip", what);
}

static void test_cobs(void) {
    /* Examples from Cheshire and Baker's COBS paper / the Wikipedia table. */
    const uint8_t a[] = {0x00}, a_enc[] = {0x01, 0x01};
    const uint8_t b[] = {0x11, 0x22, 0x00, 0x33}, b_enc[] = {0x03, 0x11, 0x22, 0x02, 0x33};
    uint8_t enc[16];
    CHECK(ol_cobs_encode(a, 1, enc) == 2 && memcmp(enc, a_enc, 2) == 0, "single zero");
    CHECK(ol_cobs_encode(b, 4, enc) == 5 && memcmp(enc, b_enc, 5) == 0, "11 22 00 33");
    CHECK(ol_cobs_encode(b, 0, enc) == 1 && enc[0] == 0x01, "empty");

    uint8_t data[600];
    for (size_t i = 0; i < sizeof data; ++i) data[i] = (uint8_t)(i % 255 + 1); /* no zeros: 254-byte blocks */
    for (size_t n = 0; n <= sizeof data; n += 1) round_trip(data, n, "non-zero");
    memset(data, 0, sizeof data);
    round_trip(data, sizeof data, "zeros");

    uint8_t bad[] = {0x05, 0x11, 0x22};
    uint8_t out[8];
    CHECK(ol_cobs_decode(bad, 3, out) == -1, "a code past the end");
    uint8_t zero[] = {0x03, 0x00, 0x22};
    CHECK(ol_cobs_decode(zero, 3, out) == -1, "a zero inside");
}

int main(void) {
    test_crc32c();
    test_cobs();
    return check_report("framing");
}
