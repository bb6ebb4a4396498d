/*
 * utf8.h - the one rule for user-supplied text (names, labels, notes,
 * passwords): valid UTF-8, no control characters, a length in characters.
 *
 * Lengths are counted in characters (Unicode code points), because that is
 * what HTTP-API.md and a user mean by "at most 100 characters"; the byte
 * length is bounded first (4 bytes per character at most), so a huge
 * string is refused without being walked. Malformed UTF-8 - overlong
 * forms, surrogates, code points above U+10FFFF, truncated sequences - is
 * refused, and so are control characters: C0 (but LF, CR and TAB in
 * multi-line text), DEL, C1 and the line/paragraph separators U+2028 and
 * U+2029, which break logs and JSON consumers alike.
 */
#ifndef BASE_UTF8_H
#define BASE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#include "libs/base/err.h"

/* Flags for utf8_check_text. */
#define UTF8_MULTILINE 0x1u /* LF, CR and TAB are allowed */
#define UTF8_BLANK_OK 0x2u  /* text of spaces only is allowed (passwords) */

/* Checks s as text of min_chars..max_chars characters (see above); with
 * min_chars > 0 and without UTF8_BLANK_OK, text of spaces only is refused
 * too. s NULL counts as "". Returns ERR_OK, or ERR_INVAL with a static
 * reason ready to be a field violation in *why (why may be NULL), in this
 * order of precedence as the text is read:
 *   "is required"                          empty and min_chars > 0
 *   "must be valid UTF-8"
 *   "must not contain control characters"
 *   "is too long"                          more than max_chars
 *   "must not be blank"
 *   "is too short"                         fewer than min_chars
 * Reads at most 4 * max_chars + 1 bytes of s. */
int utf8_check_text(const char *s, size_t min_chars, size_t max_chars,
                    unsigned flags, const char **why) WARN_UNUSED;

/* The length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlong forms, surrogates or code points above U+10FFFF; n >= 1), or 0
 * when the bytes there start none. The one UTF-8 decoder: the text check
 * above, the JSON log's sanitiser and pbjson read with it. */
size_t utf8_seq_len(const char *s, size_t n);

/* True when s[0..n) is well-formed UTF-8 throughout. */
bool utf8_valid(const char *s, size_t n);

#endif
